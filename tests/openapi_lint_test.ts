import assert from "node:assert/strict";
import { SCHEMA_FILE, schemaText, servedDocument } from "../client/generate.ts";
import { testTempDir } from "./harness.ts";
import { redoclyLint } from "./openapi_tools.ts";

type Operation = { operationId?: string; deprecated?: boolean; security?: Record<string, string[]>[] };

Deno.test("the OpenAPI document passes Redocly's recommended rules and matches the committed client types", async (t) => {
  const document = await servedDocument();
  const dir = testTempDir();
  try {
    await t.step("redocly lint (recommended rules, no ignore file): no error, no warning", async () => {
      const path = `${dir}/openapi.json`;
      await Deno.writeTextFile(path, JSON.stringify(document, null, 2));
      const { errors, warnings, problems } = await redoclyLint(path);
      const listed = problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
      assert.deepEqual({ errors, warnings }, { errors: 0, warnings: 0 }, listed.join("\n"));
    });

    await t.step("every operation has its stable operationId", () => {
      const ids: Record<string, string> = {};
      for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
        for (const [method, op] of Object.entries(item)) ids[`${method.toUpperCase()} ${path}`] = op.operationId!;
      }
      assert.deepEqual(ids, {
        "POST /api/v1/images/upload": "uploadImage",
        "POST /api/v1/images/batch": "uploadBatch",
        "GET /api/v1/batches/{batch_id}": "getBatch",
        "GET /api/v1/batches/{batch_id}/results.zip": "getBatchResults",
        "GET /api/v1/images/status/{task_id}": "getTaskStatus",
        "GET /api/v1/images/status/{task_id}/events": "streamTaskStatus",
        "GET /api/v1/images/results": "listResults",
        "GET /api/v1/images/{task_id}": "getImage",
        "DELETE /api/v1/images/{task_id}": "deleteImage",
        "POST /api/v1/images/cancel/{task_id}": "cancelImage",
        "GET /api/v1/images/contours/{task_id}": "getContours",
        "GET /static/results/{name}": "getResultFile",
        "GET /api/v1/health": "getHealth",
        "GET /api/v1/health/redis": "getRedisHealth",
        "GET /api/v1/health/worker": "getWorkerHealth",
        "GET /api/v1/health/celery": "getCeleryHealth",
        "GET /api/v1/health/full": "getFullHealth",
        "GET /info": "getInfo",
        "GET /metrics": "getMetrics",
      });
    });

    await t.step("the committed client types are generated from this document", async () => {
      const committed = await Deno.readTextFile(SCHEMA_FILE);
      assert.ok(
        committed === await schemaText(document),
        "client/schema.d.ts is stale: run `deno task client:generate`",
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
