/**
 * What `deno task start`, `dev` and `worker` run: reads the configuration with the service's own schema, then starts
 * main.ts or worker.ts with the permissions that configuration needs and no more, forwards SIGINT and SIGTERM to it,
 * and exits with its exit code. The tasks name the fixed flags (`--allow-sys`, `--allow-run`, …); the flags that
 * depend on the configuration are added here, so that UPLOAD_DIR, RESULT_DIR, a Redis host or a listen address
 * outside the defaults work without widening deno.json for everyone.
 *
 * ```sh
 * deno run --allow-read=. --allow-env --allow-run=deno launcher.ts --no-prompt --allow-env main.ts
 * ```
 */
import { type Config, ConfigError, loadConfig, redisSeeds } from "./config.ts";

const SCRIPTS = ["main.ts", "worker.ts"];
/** Where http_server.ts serves the requests it relays, in a runtime that cannot serve accepted connections itself. */
const LOOPBACK_HOP = "127.0.0.1";

/**
 * The flags to run `script` with under `config`: `fixed` (the task's own, passed through) with `--allow-read`,
 * `--allow-write` and `--allow-net` extended by what the configuration names. main.ts listens on HOST and, with
 * REDIS_AUTOSTART, writes REDIS_DATA_DIR; both reach Redis and read and write the two folders; a process that delivers
 * callbacks (worker.ts, or main.ts with its embedded workers) may connect anywhere once CALLBACK_SECRET enables them,
 * since their hosts are the clients' to choose (the SSRF checks in net/outbound.ts decide which may be reached).
 */
export function permissionFlags(fixed: string[], script: string, config: Config): string[] {
  const api = script === "main.ts";
  const lists: Record<"read" | "write" | "net", string[]> = { read: ["."], write: [], net: [] };
  let anyHost = false;
  const passed: string[] = [];
  for (const flag of fixed) {
    const m = /^--allow-(read|write|net)(?:=(.*))?$/.exec(flag);
    if (!m) passed.push(flag);
    else if (m[2] === undefined && m[1] === "net") anyHost = true;
    else if (m[2] === undefined) throw new Error(`${flag} without a list would grant every path; name them`);
    else lists[m[1] as "read" | "write" | "net"].push(...m[2].split(",").filter(Boolean));
  }
  const folders = [config.UPLOAD_DIR, config.RESULT_DIR];
  if (api && config.REDIS_AUTOSTART) folders.push(config.REDIS_DATA_DIR);
  for (const folder of folders) {
    // Deno's flag lists are comma-separated, with no way to write a comma inside an entry.
    if (folder.includes(",")) throw new Error(`${folder}: a folder whose name holds a comma cannot be granted`);
    lists.read.push(folder);
    lists.write.push(folder);
  }
  // The server, the sentinels or the cluster's seed nodes. The primary a sentinel names and the nodes a cluster
  // announces must be among these hosts too (as they are when each runs on its own host and port).
  lists.net.push(...redisSeeds(config).map((n) => netHost(n.host)));
  if (config.STORAGE === "s3") lists.net.push(objectStoreHost(config));
  // The API may also serve on a loopback port of its own, which its connection guard then relays to (http_server.ts).
  if (api) lists.net.push(netHost(config.HOST), LOOPBACK_HOP);
  // The workers also download source_url images, from hosts the clients choose within SOURCE_ALLOWED_HOSTS.
  const deliversCallbacks = !api || config.EMBEDDED_WORKER;
  if (deliversCallbacks && (config.CALLBACK_SECRET || config.SOURCE_ALLOWED_HOSTS.length > 0)) anyHost = true;
  const list = (name: string, entries: string[]) => `--allow-${name}=${[...new Set(entries)].join(",")}`;
  return [
    ...passed,
    list("read", lists.read),
    list("write", lists.write),
    anyHost ? "--allow-net" : list("net", lists.net),
  ];
}

/** The host the S3 store talks to (the bucket's own host with virtual-host addressing); presigned URLs name it too. */
function objectStoreHost(config: Config): string {
  const endpoint = new URL(config.S3_ENDPOINT ?? `https://s3.${config.S3_REGION}.amazonaws.com`);
  return config.S3_FORCE_PATH_STYLE ? endpoint.host : `${config.S3_BUCKET}.${endpoint.host}`;
}

/** A host as --allow-net writes it: IPv6 addresses in brackets. */
function netHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, "");
  return bare.includes(":") ? `[${bare}]` : bare;
}

/** `deno run` arguments for the launcher's own arguments (the fixed flags, then the script). */
export function childArgs(args: string[], config: Config): string[] {
  const script = args.at(-1) ?? "";
  if (!SCRIPTS.includes(script)) throw new Error(`the last argument must be one of ${SCRIPTS.join(", ")}`);
  return ["run", ...permissionFlags(args.slice(0, -1), script, config), script];
}

if (import.meta.main) {
  let args: string[];
  try {
    args = childArgs(Deno.args, loadConfig());
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `error: ${(err as Error).message}`);
    Deno.exit(2);
  }
  const child = new Deno.Command("deno", { args, stdin: "inherit", stdout: "inherit", stderr: "inherit" }).spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      try {
        child.kill(signal);
      } catch {
        // it has already exited
      }
    });
  }
  // A child ended by a signal reports 128 + its number, as a shell would.
  Deno.exit((await child.status).code);
}
