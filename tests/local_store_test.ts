import assert from "node:assert/strict";
import { join } from "node:path";
import { createLocalStore, SPARE_FILES, SPARE_NAME } from "../storage/object_store.ts";
import { listDir, testTempDir } from "./harness.ts";

function folders(syncMaxKib?: number) {
  const root = testTempDir();
  return {
    root,
    UPLOAD_DIR: join(root, "uploads"),
    RESULT_DIR: join(root, "results"),
    ...(syncMaxKib === undefined ? {} : { FILE_IO_SYNC_MAX_KIB: syncMaxKib }),
  };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
const spares = async (dir: string) => (await listDir(dir)).filter((n) => SPARE_NAME.test(n));

// Both ways of doing file operations: on the calling thread (the default) and through Deno's thread pool.
for (
  const [how, syncMaxKib] of [["small files on the calling thread", undefined], ["every operation pooled", 0]] as const
) {
  Deno.test(`local store (${how}): a removed upload's file is emptied, kept and written over by the next write`, async (t) => {
    const dirs = folders(syncMaxKib);
    const store = createLocalStore(dirs);
    await store.prepare();
    try {
      await t.step("removing an upload leaves an empty spare, not the name or its bytes", async () => {
        await store.write("uploads", "a.png", bytes(5000, 1));
        const inode = (await Deno.stat(store.locate("uploads", "a.png"))).ino;
        assert.equal(await store.removeAt(store.locate("uploads", "a.png"), { reuse: true }), true);
        assert.equal(await store.exists("uploads", "a.png"), false);
        const [spare] = await spares(dirs.UPLOAD_DIR);
        assert.ok(spare, "a spare file is kept");
        const info = await Deno.stat(join(dirs.UPLOAD_DIR, spare));
        assert.equal(info.size, 0, "the spare holds none of the upload's bytes");
        assert.equal(info.ino, inode);
      });

      await t.step("the next write fills the spare (same file), whole, under its own name", async () => {
        const [spare] = await spares(dirs.UPLOAD_DIR);
        const inode = (await Deno.stat(join(dirs.UPLOAD_DIR, spare))).ino;
        const data = bytes(7000, 2);
        await store.write("uploads", "b.jpg", data);
        assert.deepEqual(await store.read("uploads", "b.jpg"), data);
        assert.equal((await Deno.stat(store.locate("uploads", "b.jpg"))).ino, inode);
        assert.deepEqual(await spares(dirs.UPLOAD_DIR), []);
        assert.deepEqual((await listDir(dirs.UPLOAD_DIR)).sort(), ["b.jpg"], "no temp file is left");
      });

      await t.step("results take spares too (one filesystem), text included", async () => {
        await store.removeAt(store.locate("uploads", "b.jpg"), { reuse: true });
        const [spare] = await spares(dirs.UPLOAD_DIR);
        const inode = (await Deno.stat(join(dirs.UPLOAD_DIR, spare))).ino;
        await store.write("results", "b.json", '{"ok":true}');
        assert.equal(new TextDecoder().decode((await store.read("results", "b.json"))!), '{"ok":true}');
        assert.equal((await Deno.stat(store.locate("results", "b.json"))).ino, inode);
      });

      await t.step(`at most ${SPARE_FILES} spares are kept; further removals unlink`, async () => {
        const names = Array.from({ length: SPARE_FILES + 4 }, (_, i) => `${i}.png`);
        for (const n of names) await store.write("uploads", n, bytes(100, 3));
        for (const n of names) assert.equal(await store.removeAt(store.locate("uploads", n), { reuse: true }), true);
        assert.equal((await spares(dirs.UPLOAD_DIR)).length, SPARE_FILES);
        assert.deepEqual((await listDir(dirs.UPLOAD_DIR)).filter((n) => !SPARE_NAME.test(n)), []);
        assert.equal(
          await store.removeAt(store.locate("uploads", "0.png"), { reuse: true }),
          false,
          "a missing upload",
        );
      });

      await t.step("a spare that has gone (swept) only means a new file is created", async () => {
        for (const s of await spares(dirs.UPLOAD_DIR)) await Deno.remove(join(dirs.UPLOAD_DIR, s));
        const data = bytes(3000, 4);
        await store.write("uploads", "c.png", data);
        assert.deepEqual(await store.read("uploads", "c.png"), data);
        assert.deepEqual((await listDir(dirs.UPLOAD_DIR)).sort(), ["c.png"]);
      });
    } finally {
      await Deno.remove(dirs.root, { recursive: true });
    }
  });

  Deno.test(`local store (${how}): a removal without reuse unlinks (someone may still be reading the file)`, async () => {
    const dirs = folders(syncMaxKib);
    const store = createLocalStore(dirs);
    await store.prepare();
    try {
      await store.write("uploads", "a.png", bytes(100, 5));
      assert.equal(await store.remove("uploads", "a.png"), true);
      await store.write("uploads", "b.png", bytes(100, 6));
      assert.equal(await store.removeAt(store.locate("uploads", "b.png")), true);
      assert.deepEqual(await listDir(dirs.UPLOAD_DIR), []);
    } finally {
      await Deno.remove(dirs.root, { recursive: true });
    }
  });
}

Deno.test("local store: files over FILE_IO_SYNC_MAX_KIB are read, written and served whole the pooled way", async () => {
  const dirs = folders(4);
  const store = createLocalStore(dirs);
  await store.prepare();
  try {
    const small = bytes(4096, 7);
    const large = bytes(4097, 8);
    await store.write("results", "small.png", small);
    await store.write("results", "large.png", large);
    await store.write("results", "large.json", JSON.stringify({ a: "é".repeat(3000) }));
    assert.deepEqual(await store.read("results", "small.png"), small);
    assert.deepEqual(await store.read("results", "large.png"), large);
    assert.equal(JSON.parse(new TextDecoder().decode((await store.read("results", "large.json"))!)).a.length, 3000);
    assert.equal(await store.read("results", "missing.png"), null);
    assert.equal(await store.open("results", "missing.png"), null);
    const opened = await store.open("results", "small.png");
    assert.ok(opened?.body instanceof Uint8Array, "a small file is served from its bytes");
    assert.deepEqual(opened.body, small);
    assert.equal(opened.size, small.length);
    const streamed = await store.open("results", "large.png");
    assert.ok(streamed?.body instanceof ReadableStream, "a large file is streamed");
    assert.deepEqual(new Uint8Array(await new Response(streamed.body).arrayBuffer()), large);
    assert.equal(streamed.size, large.length);
    assert.deepEqual((await listDir(dirs.RESULT_DIR)).sort(), ["large.json", "large.png", "small.png"]);
  } finally {
    await Deno.remove(dirs.root, { recursive: true });
  }
});
