import assert from "node:assert/strict";
import { join } from "node:path";
import { createLocalStore, SPARE_FILES, SPARE_NAME } from "../storage/object_store.ts";
import { listDir, testTempDir } from "./harness.ts";

function folders() {
  const root = testTempDir();
  return { root, UPLOAD_DIR: join(root, "uploads"), RESULT_DIR: join(root, "results") };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
const spares = async (dir: string) => (await listDir(dir)).filter((n) => SPARE_NAME.test(n));

Deno.test("local store: a removed upload's file is emptied, kept and written over by the next write", async (t) => {
  const dirs = folders();
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
      assert.equal(await store.removeAt(store.locate("uploads", "0.png"), { reuse: true }), false, "a missing upload");
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

Deno.test("local store: a removal without reuse unlinks (someone may still be reading the file)", async () => {
  const dirs = folders();
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
