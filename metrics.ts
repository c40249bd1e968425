import type { QueueEvents } from "bullmq";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import client from "prom-client";
import { JOB_FAILURE_CODES } from "./errors.ts";
import type { ConnectionStats } from "./http_server.ts";
import { type ContourQueue, parseFailure } from "./queue/contour_queue.ts";
import type { ContourSummary } from "./queue/job.ts";
import { freeBytes } from "./storage/disk.ts";

/** The service's Prometheus metrics, on a registry of its own (so tests can build several apps). */
export interface Metrics {
  registry: client.Registry;
  /** Records every HTTP request by route template and status. */
  middleware: MiddlewareHandler;
  /** Text exposition, with queue gauges read at scrape time. */
  render(): Promise<string>;
  close(): void;
}

const STAGES = ["decode", "analyse", "measure", "draw", "encode", "total"] as const;

/**
 * Creates the metrics: HTTP, queue, job stages (from any worker, via queue events), workers, memory, and the HTTP
 * server's connections when `connections` is given.
 */
export function createMetrics(
  queue: ContourQueue,
  events?: QueueEvents,
  connections?: ConnectionStats,
  diskDirs: Record<string, string> = {},
): Metrics {
  const registry = new client.Registry();
  const diskFree = new client.Gauge({
    name: "bip_disk_free_bytes",
    help: "Bytes this process may still write where uploads (dir=upload) and results (dir=result) are stored",
    labelNames: ["dir"],
    registers: [registry],
  });
  if (connections) registerConnectionMetrics(registry, connections);
  const requests = new client.Counter({
    name: "bip_http_requests_total",
    help: "HTTP requests by method, route and status",
    labelNames: ["method", "route", "status"],
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: "bip_http_request_duration_seconds",
    help: "HTTP request latency by method and route",
    labelNames: ["method", "route"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const jobs = new client.Gauge({
    name: "bip_queue_jobs",
    help: "Jobs in the queue by state",
    labelNames: ["state"],
    registers: [registry],
  });
  const workers = new client.Gauge({
    name: "bip_workers",
    help: "Worker connections seen by the queue",
    registers: [registry],
  });
  const stages = new client.Histogram({
    name: "bip_job_stage_duration_seconds",
    help: "Processing time of completed jobs per stage (any worker process)",
    labelNames: ["stage"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const failures = new client.Counter({
    name: "bip_jobs_failed_total",
    help: "Jobs that ended failed, by error.code (timeout: an analysis ran past ANALYSIS_TIMEOUT_MS), from any worker",
    labelNames: ["code"],
    registers: [registry],
  });
  // Every code from the start, so a rate over a series that has not moved yet is 0 rather than missing.
  for (const code of JOB_FAILURE_CODES) failures.inc({ code }, 0);
  const memory = new client.Gauge({
    name: "bip_process_memory_bytes",
    help: "This API process's memory by kind (rss, heap_total, heap_used, external)",
    labelNames: ["kind"],
    registers: [registry],
  });

  const onCompleted = ({ returnvalue }: { returnvalue: unknown }) => {
    const summary = (typeof returnvalue === "string" ? safeParse(returnvalue) : returnvalue) as ContourSummary | null;
    const t = summary?.timings_ms;
    if (!t) return;
    // An image left to be drawn on request (RENDER=lazy) reports draw and encode as 0: no sample, not a 0 s one.
    const drawn = t.draw > 0 || t.encode > 0;
    for (const stage of STAGES) {
      if (typeof t[stage] !== "number" || (!drawn && (stage === "draw" || stage === "encode"))) continue;
      stages.observe({ stage }, t[stage] / 1000);
    }
  };
  events?.on("completed", onCompleted as never);
  // Only a job's last failure is an event: an attempt that will be retried is not counted.
  const onFailed = ({ failedReason }: { failedReason: string }) => {
    failures.inc({ code: parseFailure(failedReason).code });
  };
  events?.on("failed", onFailed as never);

  return {
    registry,
    middleware: async (c, next) => {
      const start = performance.now();
      try {
        await next();
      } finally {
        // The route template, not the path: task ids would make every request its own time series.
        const route = routePath(c) || "unmatched";
        requests.inc({ method: c.req.method, route, status: String(c.res.status) });
        latency.observe({ method: c.req.method, route }, (performance.now() - start) / 1000);
      }
    },
    async render() {
      try {
        const counts = await queue.getJobCounts("waiting", "active", "completed", "failed", "delayed", "prioritized");
        for (const [state, n] of Object.entries(counts)) jobs.set({ state }, n);
        workers.set((await queue.getWorkers()).length);
      } catch {
        // Redis is down: the queue gauges keep their last values; /api/v1/health/full says why.
      }
      for (const [dir, path] of Object.entries(diskDirs)) {
        const free = await freeBytes(path);
        if (free !== null) diskFree.set({ dir }, free);
      }
      const m = Deno.memoryUsage();
      memory.set({ kind: "rss" }, m.rss);
      memory.set({ kind: "heap_total" }, m.heapTotal);
      memory.set({ kind: "heap_used" }, m.heapUsed);
      memory.set({ kind: "external" }, m.external);
      return await registry.metrics();
    },
    close() {
      events?.off("completed", onCompleted as never);
      events?.off("failed", onFailed as never);
    },
  };
}

/** The connection layer's gauge and counters, read from its counters at scrape time. */
function registerConnectionMetrics(registry: client.Registry, stats: ConnectionStats): void {
  new client.Gauge({
    name: "bip_http_connections",
    help: "Client connections open now (at most MAX_CONNECTIONS)",
    registers: [registry],
    collect() {
      this.set(stats.open);
    },
  });
  // Counters that follow the server's own running totals: each scrape adds what they grew by since the last one.
  const mirror = (name: string, help: string, label: string, sources: Record<string, () => number>) => {
    const seen = new Map<string, number>();
    new client.Counter({
      name,
      help,
      labelNames: label ? [label] : [],
      registers: [registry],
      collect() {
        for (const [value, read] of Object.entries(sources)) {
          const now = read();
          this.inc(label ? { [label]: value } : {}, now - (seen.get(value) ?? 0));
          seen.set(value, now);
        }
      },
    });
  };
  mirror("bip_http_connections_refused_total", "Connections refused (bare 503) at MAX_CONNECTIONS", "", {
    "": () => stats.refused,
  });
  mirror(
    "bip_http_connections_timed_out_total",
    "Connections closed by a deadline: header (HEADER_TIMEOUT_MS) or idle keep-alive (IDLE_TIMEOUT_MS)",
    "phase",
    { header: () => stats.headerTimeouts, idle: () => stats.idleTimeouts },
  );
  mirror(
    "bip_http_accept_errors_total",
    "Failed accepts (out of file descriptors and the like); the server sheds idle connections and carries on",
    "",
    { "": () => stats.acceptErrors },
  );
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
