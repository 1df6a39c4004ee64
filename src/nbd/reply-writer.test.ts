import { Duplex } from "node:stream";
import { expect, test } from "vitest";
import { BufferPool } from "./buffer-pool.ts";
import { ReplyWriter } from "./reply-writer.ts";

/** A socket stand-in that records each write call and completes it only when the test says so. */
class RecordingSocket extends Duplex {
  readonly writes: Buffer[][] = [];
  readonly #pending: (() => void)[] = [];

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.writes.push([Buffer.from(chunk)]);
    this.#pending.push(callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: () => void): void {
    this.writes.push(chunks.map((c) => Buffer.from(c.chunk)));
    this.#pending.push(callback);
  }

  /** Lets every write so far complete. */
  complete(): void {
    for (const done of this.#pending.splice(0)) done();
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test("replies queued in one turn leave together, in order, small ones merged into one batch buffer", async () => {
  const socket = new RecordingSocket();
  const pool = new BufferPool();
  const writer = new ReplyWriter(socket, pool);
  writer.send(Buffer.from("a1"));
  writer.reserve(2).write("a2");
  const pooled = pool.acquire(100 * 1024);
  pooled.fill(0x62, 0, 100 * 1024);
  writer.sendPooled(pooled.subarray(0, 100 * 1024), pooled);
  writer.send(Buffer.from("c1"));
  expect(socket.writes).toHaveLength(0);
  await turn();
  const all = socket.writes.flat();
  expect(Buffer.concat(all).toString("latin1")).toBe(`a1a2${"b".repeat(100 * 1024)}c1`);
  // One merged buffer before the large reply, the large reply as it is, one merged buffer after it.
  expect(all.map((b) => b.byteLength)).toEqual([4, 100 * 1024, 2]);
  socket.complete();
});

test("a pooled reply goes back to the pool only once the socket has written it", async () => {
  const socket = new RecordingSocket();
  const pool = new BufferPool();
  const writer = new ReplyWriter(socket, pool);
  const pooled = pool.acquire(128 * 1024);
  writer.sendPooled(pooled.subarray(0, 128 * 1024), pooled);
  await turn();
  expect(pool.idleBytes).toBe(0);
  socket.complete();
  await turn();
  expect(pool.idleBytes).toBe(pooled.byteLength);
});

test("small pooled replies are copied at once; a closed writer sends nothing and keeps nothing", async () => {
  const socket = new RecordingSocket();
  const pool = new BufferPool();
  const writer = new ReplyWriter(socket, pool);
  const small = pool.acquire(4096);
  writer.sendPooled(small.subarray(0, 16), small);
  expect(pool.idleBytes).toBe(small.byteLength);
  writer.close();
  const large = pool.acquire(1024 * 1024);
  writer.sendPooled(large, large);
  writer.send(Buffer.alloc(10));
  await turn();
  expect(socket.writes).toHaveLength(0);
  expect(pool.idleBytes).toBe(small.byteLength + large.byteLength);
});
