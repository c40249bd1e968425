/** Log levels in increasing severity. */
export type Level = "debug" | "info" | "warn" | "error";

let pretty = false;

/** Switches between one-JSON-object-per-line (default) and readable lines (DEBUG=true). */
export function configureLog(options: { pretty: boolean }): void {
  pretty = options.pretty;
}

/** Writes one structured log event. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (level === "debug" && !pretty) return;
  const time = new Date().toISOString();
  const line = pretty
    ? `${time} ${level.toUpperCase().padEnd(5)} ${msg}${
      Object.keys(fields).length
        ? " " + Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")
        : ""
    }`
    : JSON.stringify({ time, level, msg, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}
