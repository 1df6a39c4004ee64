// Asynchronous reads: what they return while writes, snapshot deletes and extent reuse happen before their data
// arrives. libuv's thread pool is kept busy first, so each read's file I/O surely runs after the changes.
import crypto from "node:crypto";
import { afterEach, beforeEach, expect, test } from "vitest";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { San } from "./san.ts";

const KiB = 1024;
const CHUNK = 64 * KiB;
let san: San;
let cleanup: () => void;
let closed = false;

beforeEach(() => {
  const temp = tempDataDir("esan-async-read");
  cleanup = temp.cleanup;
  san = San.create(temp.dir, { capacityBytes: 64 * CHUNK, chunkSizeBytes: CHUNK });
  san.createVolumeGroup("vg");
  san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 16 * CHUNK });
  closed = false;
});

afterEach(() => {
  if (!closed) san.close();
  cleanup();
});

/** Occupies every thread of libuv's pool for a while; resolves when they are free again. */
function busyThreadPool(): Promise<void> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const jobs = Array.from({ length: threads }, () => new Promise<void>((resolve) => crypto.pbkdf2("x", "y", 100_000, 32, "sha256", () => resolve())));
  return Promise.all(jobs).then(() => undefined);
}

/** Starts an asynchronous read of one chunk behind a busy thread pool. */
function readLater(id: string, chunk: number): { data: Buffer; done: Promise<void> } {
  void busyThreadPool();
  const data = Buffer.alloc(CHUNK);
  return { data, done: san.readIntoAsync(id, chunk * CHUNK, data) };
}

test("a read returns the data of when it started, although its chunk is overwritten before the data arrives", async () => {
  san.write("vg/v", 0, Buffer.alloc(CHUNK, 0xa1));
  san.flush();
  const read = readLater("vg/v", 0);
  san.write("vg/v", 0, Buffer.alloc(4 * KiB, 0xb2));
  await read.done;
  expect(read.data.equals(Buffer.alloc(CHUNK, 0xa1))).toBe(true);
  expect(san.read("vg/v", 0, 8 * KiB).equals(Buffer.concat([Buffer.alloc(4 * KiB, 0xb2), Buffer.alloc(4 * KiB, 0xa1)]))).toBe(true);
});

test("an extent released while a read holds it is not handed out again until the read ends", async () => {
  san.write("vg/v", 0, Buffer.alloc(CHUNK, 0xa1));
  san.createSnapshot({ volumeGroup: "vg", name: "s", sourceVolumeId: "vg/v" });
  const read = readLater("vg/s", 0);
  // The volume copies away from the shared extent, then the snapshot goes: the extent is free once committed.
  san.write("vg/v", 0, Buffer.alloc(CHUNK, 0xb2));
  san.deleteSnapshot("vg/s");
  san.flush();
  for (let chunk = 1; chunk < 16; chunk++) san.write("vg/v", chunk * CHUNK, Buffer.alloc(CHUNK, 0xc3));
  san.flush();
  await read.done;
  expect(read.data.equals(Buffer.alloc(CHUNK, 0xa1))).toBe(true);
  for (let chunk = 1; chunk < 16; chunk++) expect(san.read("vg/v", chunk * CHUNK, 4)[0]).toBe(0xc3);
  expect(san.check().ok).toBe(true);
});

test("closing the SAN while a read is in flight lets the read finish on the still-open file", async () => {
  san.write("vg/v", CHUNK, Buffer.alloc(CHUNK, 0xd4));
  const read = readLater("vg/v", 1);
  san.close();
  closed = true;
  await read.done;
  expect(read.data.equals(Buffer.alloc(CHUNK, 0xd4))).toBe(true);
});
