// What the file operations of a task cost in CPU on the disk the bench runs on. A task of ours creates three files
// (the upload, the annotated image and the result document, each as a temp file renamed into place) where the original
// creates two, and on some file systems creating a file costs far more than writing its bytes.
import process from "node:process";
import { round } from "./stats.ts";

/** CPU ms per operation on a file of `bytes` bytes (this process's user + system time). */
export interface FileOpCosts {
  bytes: number;
  files: number;
  /** Creating a new file and writing it whole. */
  create_ms: number;
  /** Renaming a file within its folder (how writes are made atomic). */
  rename_ms: number;
  /** Writing over an existing file. */
  overwrite_ms: number;
  read_ms: number;
  remove_ms: number;
  /** Creating new files again right after as many were removed (the churn of uploads removed once analysed). */
  create_after_removes_ms: number;
}

/** Measures each operation over `files` files in a fresh folder under `dir`, removed afterwards. */
export async function benchFileOps(dir: string, files: number, bytes = 100_000): Promise<FileOpCosts> {
  const folder = await Deno.makeTempDir({ dir, prefix: "files-" });
  const data = new Uint8Array(bytes).fill(0x5a);
  const names = Array.from({ length: files }, () => `${folder}/${crypto.randomUUID()}`);
  const cpu = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const each = async (op: (name: string) => Promise<unknown>) => {
    const from = cpu();
    for (const name of names) await op(name);
    return round((cpu() - from) / files, 3);
  };
  try {
    const create_ms = await each((n) => Deno.writeFile(`${n}.tmp`, data));
    const rename_ms = await each((n) => Deno.rename(`${n}.tmp`, n));
    const overwrite_ms = await each((n) => Deno.writeFile(n, data));
    const read_ms = await each((n) => Deno.readFile(n));
    const remove_ms = await each((n) => Deno.remove(n));
    const create_after_removes_ms = await each((n) => Deno.writeFile(n, data));
    return { bytes, files, create_ms, rename_ms, overwrite_ms, read_ms, remove_ms, create_after_removes_ms };
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}
