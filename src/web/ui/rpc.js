// A JSON-RPC client of xapi-taskd's public API (POST /jsonrpc, JSON-RPC 2.0), the same
// calls any XAPI client makes. Every call has a deadline.

/** A refusal by the server: XAPI's error code and parameters (`SESSION_INVALID`, …). */
export class XapiError extends Error {
  constructor(code, params) {
    super([code, ...params].join(" "));
    this.code = code;
    this.params = params;
  }
}

/** The server could not be reached, or answered something that is not JSON-RPC. */
export class NetworkError extends Error {}

let nextId = 1;
/** Server clock minus ours, in ms, from the last answer's `Date` header (0 within 1.5 s). */
export let clockSkew = 0;

/**
 * Calls `method` with positional `params`; resolves to its result, rejects with an
 * XapiError (the server said no) or a NetworkError. `timeoutMs` bounds the whole call.
 */
export async function call(method, params, timeoutMs = 30000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  let reply;
  try {
    const resp = await fetch("/jsonrpc", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method, params, id: nextId++ }),
      signal: ctl.signal,
      cache: "no-store",
      credentials: "omit",
    });
    noteClock(resp.headers.get("date"));
    reply = await resp.json();
  } catch (e) {
    throw new NetworkError(e.name === "AbortError" ? `${method} timed out` : `${method}: ${e.message}`);
  } finally {
    clearTimeout(timer);
  }
  if (reply && typeof reply === "object" && "result" in reply && !reply.error) return reply.result;
  const err = reply?.error;
  if (err && typeof err.message === "string") {
    const data = Array.isArray(err.data) ? err.data.map(String) : [];
    throw new XapiError(err.message, data);
  }
  throw new NetworkError(`${method}: not a JSON-RPC answer`);
}

function noteClock(date) {
  const server = Date.parse(date ?? "");
  if (!Number.isFinite(server)) return;
  // `Date` has whole seconds: the server's clock is somewhere in [date, date + 1 s).
  const skew = server + 500 - Date.now();
  clockSkew = Math.abs(skew) > 1500 ? skew : 0;
}
