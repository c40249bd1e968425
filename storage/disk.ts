import { statfs } from "node:fs/promises";

/**
 * Whether an error is a full disk or an exhausted quota. Deno reports both as a plain `Error` whose `code` is the errno
 * name (os error 28 / 122), not as one of `Deno.errors`: this is the one place that knows it.
 */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * Bytes an unprivileged process may still write in the file system holding `dir`; null when that cannot be read (no
 * `--allow-sys=statfs`, or the folder is missing). Deno has no statfs of its own; node:fs's needs only that one
 * permission, where `df` would need --allow-run.
 */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/**
 * A message fit for a client or a job's failure reason: Deno appends the operation and its paths to I/O errors
 * (`No space left on device (os error 28): writefile 'result_images/<id>.json.<uuid>.tmp'`), and neither the temp
 * names nor the layout of the server's disks are the caller's business.
 */
export function withoutPaths(message: string): string {
  return message
    .replace(/: [a-z_]+ '[^']*'(?: -> '[^']*')?/g, "")
    .replace(/(?:^|(?<=[\s'"(=]))(?:[A-Za-z]:)?(?:\.{1,2})?\/[^\s'"),]+/g, "<path>")
    .replace(/\b[\w.-]+\/[\w./-]*\.tmp\b/g, "<path>");
}
