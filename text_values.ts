// Values that arrive as text (form fields, environment variables), parsed strictly: Number() would read "0x5" as 5,
// " 5" as 5 and "" as 0, so a typo became a working value.
import { z } from "@hono/zod-openapi";

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEAN_WORDS = ["true", "false", "1", "0", "yes", "no", "on", "off"] as const;

/** A number, or its text in plain decimal notation, then `schema`'s own checks. */
export function decimal<T extends z.ZodType<number>>(schema: T) {
  return z.preprocess((v) => (typeof v === "string" && DECIMAL.test(v) ? Number(v) : v), schema);
}

/** `z.number()` whose wrong-type message says what text it takes (wrap it in `decimal`). */
export function number() {
  return z.number({ error: (issue) => issue.code === "invalid_type" ? "must be a decimal number" : undefined });
}

/** A boolean, or true/false, 1/0, yes/no, on/off in any case (zod's stringbool, its words listed in the OpenAPI document). */
export function booleanWord() {
  const word = z
    .stringbool({ truthy: ["true", "1", "yes", "on"], falsy: ["false", "0", "no", "off"] })
    .openapi({ type: "string", enum: [...BOOLEAN_WORDS] });
  return z.union([z.boolean(), word], { error: "must be true or false (or 1/0, yes/no, on/off)" });
}
