// Pure formatting of what the server sends: XAPI datetimes, durations, percentages.
// No DOM here, so node's test runner covers it (format.test.js).

// XAPI writes datetimes as "20261201T09:33:57Z" (xapi's ISO 8601 basic form); some
// clients store the extended form "2026-12-01T09:33:57Z". The epoch means "not set"
// (a pending task's `finished`).
const BASIC = /^(\d{4})(\d{2})(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z?$/;

/** Milliseconds since the epoch, or null for the epoch itself and for anything unreadable. */
export function parseXapiDate(text) {
  if (typeof text !== "string") return null;
  const m = BASIC.exec(text);
  const ms = m
    ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])
    : Date.parse(text);
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

const pad = (n) => String(n).padStart(2, "0");

/** Local time as "2026-12-01 10:33:57"; "—" when there is none. */
export function formatTime(ms) {
  if (ms === null) return "—";
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** Short form for a table cell: the time alone when it is today, else the date and minutes. */
export function formatShortTime(ms, now = Date.now()) {
  if (ms === null) return "—";
  const full = formatTime(ms);
  return full.slice(0, 10) === formatTime(now).slice(0, 10) ? full.slice(11) : full.slice(0, 16);
}

/** "45 s", "3 min 05 s", "2 h 03 min", "3 d 4 h": two units at most, as a person reads it. */
export function formatDuration(ms) {
  if (ms === null || !Number.isFinite(ms)) return "—";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${pad(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** XAPI's progress (a float, 0..1, unchecked by the server) as a whole percentage 0..100. */
export function percent(progress) {
  const p = Number(progress);
  if (!Number.isFinite(p)) return 0;
  return Math.round(Math.min(1, Math.max(0, p)) * 100);
}

/** Whether a status is final (xapi's `status_is_completed`). */
export function isCompleted(status) {
  return status === "success" || status === "failure" || status === "cancelled";
}

/**
 * Elapsed time and estimated time left, in ms, at `now` (server clock).
 * A completed task's elapsed time ends at `finished` (unknown if the client that
 * completed it left `finished` unset); an ETA exists only while it is unfinished and has
 * made some progress, by linear extrapolation — what a user of a progress bar expects.
 */
export function timing(task, now) {
  const created = parseXapiDate(task.created);
  if (created === null) return { elapsed: null, eta: null };
  if (isCompleted(task.status)) {
    const finished = parseXapiDate(task.finished);
    return { elapsed: finished === null ? null : finished - created, eta: null };
  }
  const elapsed = Math.max(0, now - created);
  const p = Number(task.progress);
  const eta = p > 0 && p < 1 ? (elapsed * (1 - p)) / p : null;
  return { elapsed, eta };
}
