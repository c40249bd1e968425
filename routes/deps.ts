import type { OpenAPIHono } from "@hono/zod-openapi";
import type { QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import type { ConnectionStats } from "../http_server.ts";
import type { ContourQueue } from "../queue/contour_queue.ts";
import type { PersistenceWatch } from "../queue/redis_persistence.ts";
import type { ObjectStore } from "../storage/object_store.ts";
import type { OnDemandRenderer } from "../rendering/render_on_demand.ts";

/** What the HTTP layer needs, passed in explicitly (tests build it with a real Redis and temp folders). */
export interface AppDeps {
  config: Config;
  /** Producer connection: fails fast while Redis is down. */
  redis: Redis;
  queue: ContourQueue;
  /** BullMQ's queue events, which drive the live status stream. */
  events?: QueueEvents;
  /** Shared with main.ts: while draining, new requests are refused and in-flight ones are counted down. */
  lifecycle?: Lifecycle;
  /** Where uploads and results are kept (STORAGE); by default the folders UPLOAD_DIR and RESULT_DIR. */
  store?: ObjectStore;
  /** Draws lazily rendered annotated images on their first request (RENDER=lazy). */
  renderer?: OnDemandRenderer;
  /** Versions shown by /info (the OpenCV one is known only once a worker has loaded it). */
  versions?: Record<string, string>;
  /** The Redis's persistence and eviction settings, checked on every (re)connect: shown by health and /info. */
  redisPersistence?: PersistenceWatch;
  /** The HTTP server's connection counters, for /metrics. */
  connections?: ConnectionStats;
}

/** Request accounting for a graceful shutdown. */
export interface Lifecycle {
  draining: boolean;
  /** When draining started (performance.now()): requests that had begun to arrive before it are still served. */
  drainingSince?: number;
  inFlight: number;
  /**
   * Responses that would otherwise stay open until their client leaves (event streams), ended when draining starts:
   * the server's shutdown waits for every open response. See routes/lifecycle.ts.
   */
  drainHooks?: Set<() => void>;
}

/** The Hono app type every route module extends. */
export type App = OpenAPIHono;
