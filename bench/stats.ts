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
