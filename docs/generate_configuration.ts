/**
 * Writes the settings list of docs/configuration.md from the configuration's zod schema (config.ts): each variable's
 * name, type, default and description, so the page cannot drift from what the service reads. Run it with
 * `deno task docs:config`; tests/configuration_doc_test.ts fails while the committed page differs from its output.
 *
 * @example
 * ```ts
 * const page = await withConfigurationReference(await Deno.readTextFile("docs/configuration.md"));
 * ```
 */
import { z } from "zod";
import { CONFIG_VARIABLES, ConfigSchema } from "../config.ts";

/** The page this script keeps up to date. */
export const CONFIGURATION_DOC = new URL("./configuration.md", import.meta.url);

const BEGIN = "<!-- settings: generated from config.ts by `deno task docs:config`; edit the descriptions there -->";
const END = "<!-- end of generated settings -->";

/** What one variable's schema says about it. */
export interface SettingDoc {
  name: string;
  type: string;
  /** Markdown: a value in backticks, `empty`, `none`, or the text the schema's `defaultText` gives. */
  default: string;
  description: string;
}

/** Reads one variable's type, default and description from its schema, looking through defaults, optionals and pipes. */
export function describeSetting(name: string, field: z.ZodType): SettingDoc {
  const meta = field.meta() ?? {};
  if (typeof meta.description !== "string" || meta.description === "") {
    throw new Error(`config.ts: ${name} has no description (add .describe("…") to its schema)`);
  }
  let defaultValue: unknown;
  let schema = field as unknown as z.core.$ZodTypes;
  for (;;) {
    const def = schema._zod.def;
    if (def.type === "default") {
      defaultValue ??= def.defaultValue;
      schema = def.innerType as z.core.$ZodTypes;
    } else if (def.type === "optional") {
      schema = def.innerType as z.core.$ZodTypes;
    } else if (def.type === "pipe") {
      // `decimal()` is a preprocess (a transform, then the number), `z.stringbool()` text read as a boolean;
      // `.transform()` is the type, then a transform.
      const readAsOut = def.in._zod.def.type === "transform" || def.out._zod.def.type === "boolean";
      schema = (readAsOut ? def.out : def.in) as z.core.$ZodTypes;
    } else break;
  }
  return {
    name,
    type: typeName(schema),
    default: typeof meta.defaultText === "string" ? meta.defaultText : defaultText(defaultValue),
    description: meta.description,
  };
}

/** A value's type as a reader of the page would put it. */
function typeName(schema: z.core.$ZodTypes): string {
  const def = schema._zod.def;
  if (def.type === "union" && def.options.some((o) => o._zod.def.type === "boolean")) return "boolean";
  const json = z.toJSONSchema(schema, { unrepresentable: "any" }) as z.core.JSONSchema.BaseSchema;
  if (json.type === "boolean") return "boolean";
  if (json.enum) return json.enum.map((v) => `\`${v}\``).join(" or ");
  if (json.type === "integer" || json.type === "number") {
    const noun = json.type;
    const max = typeof json.maximum === "number" && json.maximum < Number.MAX_SAFE_INTEGER ? json.maximum : undefined;
    if (typeof json.minimum === "number" && max !== undefined) return `${noun} ${json.minimum}–${max}`;
    if (typeof json.exclusiveMinimum === "number") {
      return noun === "integer" ? `integer ≥ ${json.exclusiveMinimum + 1}` : `number > ${json.exclusiveMinimum}`;
    }
    if (typeof json.minimum === "number") return `${noun} ≥ ${json.minimum}`;
    return noun;
  }
  if (json.format === "uri") return "URL";
  return "text";
}

function defaultText(value: unknown): string {
  if (value === undefined) return "none";
  if (value === "") return "empty";
  return `\`${value}\``;
}

/** The generated part of the page: one item per variable, in the schema's order. */
export function configurationReference(): string {
  const shape = ConfigSchema.in.shape as Record<string, z.ZodType>;
  const items = CONFIG_VARIABLES.map((name) => {
    const s = describeSetting(name, shape[name]);
    return `- **\`${s.name}\`** (${s.type}, ${
      s.default === "none" ? "no default" : `default ${s.default}`
    }): ${s.description}`;
  });
  return `${BEGIN}\n\n${items.join("\n")}\n\n${END}`;
}

/**
 * The page with its generated part replaced by the current one (the prose around it is kept), laid out by `deno fmt`
 * (the project's line width), so that `deno fmt --check` accepts what this writes.
 */
export async function withConfigurationReference(page: string): Promise<string> {
  const begin = page.indexOf(BEGIN);
  const end = page.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`docs/configuration.md has lost its markers (${BEGIN} … ${END})`);
  return await formatMarkdown(page.slice(0, begin) + configurationReference() + page.slice(end + END.length));
}

async function formatMarkdown(text: string): Promise<string> {
  const fmt = new Deno.Command("deno", { args: ["fmt", "--ext=md", "-"], stdin: "piped", stdout: "piped" }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { success, stdout } = await fmt.output();
  if (!success) throw new Error("deno fmt could not format docs/configuration.md");
  return new TextDecoder().decode(stdout);
}

if (import.meta.main) {
  const page = await Deno.readTextFile(CONFIGURATION_DOC);
  const next = await withConfigurationReference(page);
  if (next === page) console.log("docs/configuration.md is up to date");
  else {
    await Deno.writeTextFile(CONFIGURATION_DOC, next);
    console.log("docs/configuration.md rewritten from config.ts");
  }
}
