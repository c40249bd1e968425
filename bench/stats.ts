/** Small statistics and table helpers for the benchmarks. */
import { cpus } from "node:os";

/** The p-th percentile (0–100) of the values, by nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** The median of the values. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The arithmetic mean of the values. */
export function mean(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length;
}

/** Rounds to `digits` decimals. */
export function round(v: number, digits = 2): number {
  return Math.round(v * 10 ** digits) / 10 ** digits;
}

/** Renders rows as a Markdown table (the same text goes to the terminal and into the README). */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** CPU time the whole machine spent so far, in ms summed over cores: at nice > 0, at nice 0, and idle. */
export interface CpuTimes {
  niced: number;
  normal: number;
  idle: number;
}

/** Reads the machine's CPU times (node:os reads /proc/stat, which Deno only lets --allow-all read directly). */
export function cpuTimes(): CpuTimes {
  const t = { niced: 0, normal: 0, idle: 0 };
  for (const { times } of cpus()) {
    t.niced += times.nice;
    t.normal += times.user + times.sys + times.irq;
    t.idle += times.idle;
  }
  return t;
}

/** How one timed run used the machine's CPU: ms per image at nice > 0 (the pool's threads) and at nice 0 (all else). */
export interface CpuPerImage {
  niced_ms: number;
  normal_ms: number;
  /** Share of the machine's cores that were busy, in percent. */
  busy_pct: number;
}

/** CPU per image between two readings of cpuTimes(). */
export function cpuPerImage(from: CpuTimes, to: CpuTimes, images: number): CpuPerImage {
  const niced = to.niced - from.niced;
  const normal = to.normal - from.normal;
  const all = niced + normal + to.idle - from.idle;
  return {
    niced_ms: round(niced / images),
    normal_ms: round(normal / images),
    busy_pct: all > 0 ? round((100 * (niced + normal)) / all, 1) : NaN,
  };
}

/** The Redis server's own CPU time so far (user + system), in ms, from INFO. */
export async function redisCpu(redis: { info(section: "cpu"): Promise<string> }): Promise<number> {
  const text = await redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(text)?.[1] ?? NaN);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1000;
}

/** One process's CPU so far, in ms, by kind of thread (Linux; empty elsewhere). */
export type ThreadCpu = Record<string, number>;

/**
 * Reads a Deno process's CPU time per kind of thread from /proc/<pid>/task/<tid>/stat, through `ps` (its threads) and
 * `cat` (Deno lets only --allow-all read another process's /proc files; `ps` alone gives whole seconds).
 */
export async function threadCpu(pid: number): Promise<ThreadCpu> {
  if (Deno.build.os !== "linux") return {};
  // A system without ps or cat gives no breakdown rather than no bench.
  const text = (cmd: string, args: string[]) =>
    new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output().then(
      (out) => new TextDecoder().decode(out.stdout),
      () => "",
    );
  const tids = (await text("ps", ["-L", "-o", "tid=", "-p", String(pid)])).split(/\s+/).filter(Boolean);
  if (tids.length === 0) return {};
  // A thread that ended between the two commands is missing from cat's output, which is what it cost from now on.
  const stats = await text("cat", tids.map((tid) => `/proc/${pid}/task/${tid}/stat`));
  const cpu: ThreadCpu = {};
  for (const line of stats.split("\n")) {
    const open = line.indexOf("(");
    const close = line.lastIndexOf(")");
    if (open < 0 || close < open) continue;
    const kind = threadKind(line.slice(open + 1, close));
    // Fields after the name: state is the first, utime and stime the 12th and 13th, in clock ticks (USER_HZ, 100 on
    // every Linux Deno runs on).
    const fields = line.slice(close + 2).split(" ");
    cpu[kind] = (cpu[kind] ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10;
  }
  return cpu;
}

/** What a thread of a Deno worker process does, from its name. */
function threadKind(name: string): string {
  if (name.startsWith("worker-")) return "analysis"; // the pool's Web Workers
  if (name === "deno") return "main"; // JS: BullMQ, ioredis, job bookkeeping
  if (name.startsWith("tokio-runtime")) return "file_io"; // Deno's blocking pool runs async file operations
  if (name.startsWith("V8 ")) return "v8"; // garbage collection and compilation
  return "other";
}

/** Per image, what each kind of thread spent between two readings of threadCpu(). */
export function threadCpuPerImage(from: ThreadCpu, to: ThreadCpu, images: number): ThreadCpu {
  const kinds = ["analysis", "main", "file_io", "v8", "other"];
  return Object.fromEntries(kinds.map((k) => [k, round(((to[k] ?? 0) - (from[k] ?? 0)) / images)]));
}
