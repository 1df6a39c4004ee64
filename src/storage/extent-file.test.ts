import fs from "node:fs";
import path from "node:path";
import { afterEach, expect, test, vi } from "vitest";
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

test("streaming writes start a background fdatasync, and its failure makes the next sync throw (fake fdatasync: a disk EIO cannot be produced here)", () => {
  const file = tempFile();
  const extents = new ExtentFile(file, CHUNK);
  const started: ((err: NodeJS.ErrnoException | null) => void)[] = [];
  const spy = vi.spyOn(fs, "fdatasync").mockImplementation(((_fd: number, done: (err: NodeJS.ErrnoException | null) => void) => {
    started.push(done);
  }));
  try {
    // 4 KiB writes are not a stream: however many, they leave writeback to the kernel.
    for (let i = 0; i < 64; i++) extents.writeAll([{ position: extents.position(1 + i), buffer: Buffer.alloc(4096, 1) }]);
    expect(started).toHaveLength(0);
    const run = Buffer.alloc(4 * CHUNK, 2);
    for (let i = 0; i < (32 * MiB) / run.byteLength; i++) extents.writeAll([{ position: extents.position(100 + 4 * i), buffer: run }]);
    expect(started).toHaveLength(1);
    started.pop()!(null);
    // A request counts as a stream by its size, even when its chunks are scattered over the file (space reused
    // after a snapshot was deleted): 256 KiB requests in four separate 64 KiB pieces start the next one.
    for (let i = 0; i < (32 * MiB) / (4 * CHUNK); i++) {
      const scattered = [0, 1, 2, 3].map((piece) => ({ position: extents.position(2000 + 8 * i + 2 * piece), buffer: Buffer.alloc(CHUNK, 4) }));
      extents.writeAll(scattered);
    }
    expect(started).toHaveLength(1);
    // One at a time: more streaming while it runs starts no second one.
    for (let i = 0; i < (32 * MiB) / run.byteLength; i++) extents.writeAll([{ position: extents.position(100 + 4 * i), buffer: run }]);
    expect(started).toHaveLength(1);
    started[0]!(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
  } finally {
    spy.mockRestore();
  }
  expect(() => extents.sync()).toThrow(/background fdatasync of the extents file failed/);
  expect(() => extents.sync()).toThrow(/background fdatasync/);
  extents.close();
});

test("close waits for a background fdatasync in flight before giving up the descriptor", async () => {
  const file = tempFile();
  const extents = new ExtentFile(file, CHUNK);
  const run = Buffer.alloc(4 * CHUNK, 3);
  for (let i = 0; i < (32 * MiB) / run.byteLength; i++) extents.writeAll([{ position: extents.position(1 + 4 * i), buffer: run }]);
  extents.close();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const check = Buffer.alloc(run.byteLength);
  const fd = fs.openSync(file, "r");
  fs.readSync(fd, check, 0, check.byteLength, CHUNK);
  fs.closeSync(fd);
  expect(check.equals(run)).toBe(true);
});
