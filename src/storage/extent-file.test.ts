import fs from "node:fs";
import path from "node:path";
import { afterEach, expect, test } from "vitest";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { ExtentFile } from "./extent-file.ts";

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;
let cleanup: () => void = () => undefined;

afterEach(() => cleanup());

function tempFile(): string {
  const temp = tempDataDir("esan-extent-file");
  cleanup = temp.cleanup;
  fs.mkdirSync(temp.dir, { recursive: true });
  return path.join(temp.dir, "extents.dat");
}

test("the file grows ahead of writes in 64 MiB steps, as a hole that reads as zeroes", () => {
  const file = tempFile();
  const extents = new ExtentFile(file, CHUNK);
  extents.writeAll([{ position: extents.position(1), buffer: Buffer.alloc(CHUNK, 1) }]);
  expect(fs.statSync(file).size).toBe(64 * MiB);
  extents.writeAll([{ position: 64 * MiB - CHUNK, buffer: Buffer.alloc(2 * CHUNK, 2) }]);
  expect(fs.statSync(file).size).toBe(128 * MiB);
  const fresh = Buffer.alloc(CHUNK, 0xff);
  extents.readAll([{ position: extents.position(5), buffer: fresh }]);
  expect(fresh.equals(Buffer.alloc(CHUNK))).toBe(true);
  // Opening again cuts everything past the last committed extent, as after a crash.
  extents.truncateAfter(1);
  expect(fs.statSync(file).size).toBe(2 * CHUNK);
  extents.writeAll([{ position: extents.position(2), buffer: Buffer.alloc(CHUNK, 3) }]);
  expect(fs.statSync(file).size).toBe(64 * MiB);
  extents.close();
});

test("reads past the end of the file zero-fill, synchronously and on the thread pool", async () => {
  const file = tempFile();
  fs.writeFileSync(file, Buffer.alloc(CHUNK + 100, 7));
  const extents = new ExtentFile(file, CHUNK);
  const sync = Buffer.alloc(CHUNK, 0xff);
  const async = Buffer.alloc(CHUNK, 0xff);
  extents.readAll([{ position: extents.position(1), buffer: sync }]);
  await extents.readAllAsync([{ position: extents.position(1), buffer: async }]);
  const expected = Buffer.concat([Buffer.alloc(100, 7), Buffer.alloc(CHUNK - 100)]);
  expect(sync.equals(expected)).toBe(true);
  expect(async.equals(expected)).toBe(true);
  extents.close();
});
