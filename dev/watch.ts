// `deno task dev` and DEBUG/RELOAD: the service under Deno's --watch, which restarts it on source changes.
import { log } from "../log.ts";

/** Whether this process already runs under `deno task dev` (the task marks its process with BIP_WATCHED). */
export function watched(): boolean {
  return Deno.env.get("BIP_WATCHED") === "1";
}

/**
 * DEBUG/RELOAD: hands over to `deno task dev`, the same service under Deno's --watch (restarts on source changes), and
 * returns its exit code. A process cannot put itself under --watch, hence the child.
 */
export async function runUnderWatch(): Promise<number> {
  log("info", "DEBUG/RELOAD: restarting under `deno task dev` (auto-reload on file changes)");
  const child = new Deno.Command("deno", {
    args: ["task", "dev"],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn();
  let forwarded = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      forwarded = true;
      child.kill(signal);
    });
  }
  const { code } = await child.status;
  // The watched service ends itself with SIGKILL after its graceful close (see endWatched): that is a clean stop.
  return forwarded && code === 128 + 9 ? 0 : code;
}

/**
 * Ends a watched service after its graceful close. Under --watch this process is also the watcher, which outlives
 * Deno.exit() waiting for file changes: ending the whole process makes `deno task start` with DEBUG=true stop on a
 * signal too.
 */
export function endWatched(): void {
  if (watched()) Deno.kill(Deno.pid, "SIGKILL");
}
