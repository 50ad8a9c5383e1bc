"""Real headless chromium for the web page's tests: Debian's `/usr/bin/chromium`, driven by
Playwright for Python. Playwright never downloads a browser here: it is pointed at the
system one with `executable_path` (and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD is set for `pip`).

Test modules import the fixtures: `from browser import browser, open_page  # noqa: F401`.
Every page records its console errors, uncaught exceptions and dialogs; a test fails if
its page threw, broke its Content-Security-Policy or opened a dialog, unless it says it
expects one.
"""

import os
import re
import time

import pytest

CHROMIUM = os.environ.get("XAPI_TASKD_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
# Generous: the machine may be busy (assert behaviour, not speed).
TIMEOUT_MS = 15_000
SESSION_KEY = "xapi-taskd.session"


def _missing(reason):
    # In CI (.ci/run installs both) a missing browser is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright_api():
    try:
        from playwright import sync_api
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    return sync_api


# Per module: each test module imports these fixtures, which makes them its own, and two
# Playwright instances cannot be open at once in one thread.
@pytest.fixture(scope="module")
def browser(playwright_api):
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True, timeout=60_000)
        yield b
        b.close()


class Watched:
    """A page and what it reported: console errors, page errors, dialogs."""

    def __init__(self, page):
        self.page = page
        self.console_errors = []
        self.page_errors = []
        self.dialogs = []
        self.checked = False
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)

    def check(self, allow_console=()):
        self.checked = True
        console = [e for e in self.console_errors if not any(re.search(a, e) for a in allow_console)]
        assert not self.page_errors, self.page_errors
        assert not self.dialogs, self.dialogs
        assert not console, console


@pytest.fixture
def open_page(browser):
    """`open_page(url)`: a new browser context (its own sessionStorage) and page at `url`.
    At the end of the test, no page may have thrown, violated its policy or shown a dialog;
    `watched.check()` may be called earlier with console errors a test expects."""
    contexts = []
    watched = []

    def make(url=None):
        ctx = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True)
        ctx.set_default_timeout(TIMEOUT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        w = Watched(page)
        watched.append(w)
        if url is not None:
            page.goto(url)
        return page, w

    yield make
    try:
        for w in watched:
            if not w.checked:
                w.check()
    finally:
        for ctx in contexts:
            ctx.close()


def poll(fn, timeout=TIMEOUT_MS / 1000, interval=0.02):
    """Calls `fn` until it returns something truthy; that value, or a failed test."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {fn}")
        time.sleep(interval)


def poll_equal(fn, expected, timeout=TIMEOUT_MS / 1000):
    """Waits until `fn()` equals `expected`; fails showing the last value otherwise."""
    deadline = time.monotonic() + timeout
    while (v := fn()) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {v!r} != {expected!r}")
        time.sleep(0.02)


def log_in(page, user, password, expect):
    """Logs in through the form and waits until the page follows the tasks."""
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("status")).to_have_text("Live")


def row(page, label):
    """The grid row of the task named exactly `label`."""
    return page.get_by_role("row").filter(has=page.get_by_text(label, exact=True))


def session_ref(page):
    return page.evaluate(f"sessionStorage.getItem({SESSION_KEY!r})")


def measure(page, name):
    """The duration (ms) of the page's latest User Timing measure `name`, or None."""
    return page.evaluate(
        "n => { const e = performance.getEntriesByName(n); return e.length ? e[e.length - 1].duration : null; }",
        name,
    )
