import { expect, test } from "vitest";
import { BufferPool } from "./buffer-pool.ts";

test("buffers come in power-of-two classes of at least 4 KiB with room for a header, and are reused", () => {
  const pool = new BufferPool();
  expect(pool.acquire(100).byteLength).toBe(4096 + 64);
  expect(pool.acquire(4096 + 16).byteLength).toBe(4096 + 64);
  const read = pool.acquire(256 * 1024 + 28);
  expect(read.byteLength).toBe(256 * 1024 + 64);
  pool.release(read);
  expect(pool.idleBytes).toBe(256 * 1024 + 64);
  expect(pool.acquire(200 * 1024)).toBe(read);
  expect(pool.idleBytes).toBe(0);
  expect(pool.acquire(256 * 1024 + 65).byteLength).toBe(512 * 1024 + 64);
});

test("no more than maxIdleBytes wait for reuse; foreign sizes are not kept", () => {
  const pool = new BufferPool(2 * (4096 + 64));
  const [a, b, c] = [pool.acquire(4096), pool.acquire(4096), pool.acquire(4096)];
  pool.release(a);
  pool.release(b);
  pool.release(c);
  expect(pool.idleBytes).toBe(2 * (4096 + 64));
  pool.release(Buffer.alloc(1000));
  expect(pool.idleBytes).toBe(2 * (4096 + 64));
});
