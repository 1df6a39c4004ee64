// The protocol core over a minimal asynchronous backend: out-of-order replies, emulated FUA and WRITE_ZEROES,
// BLOCK_STATUS without extents, sliced huge TRIMs, and payload buffers lent safely to slow writes.
import { afterAll, beforeAll, expect, test } from "vitest";
import type { NbdBackend, NbdExportProvider } from "../../src/nbd/backend.ts";
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_ERRNO,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_REPLY_TYPE_BLOCK_STATUS,
} from "../../src/nbd/constants.ts";
import { RawNbdClient, requestBytes } from "../support/nbd-raw-client.ts";
import { startTestNbdServer, type TestNbdServer } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A sparse in-memory disk whose writes finish after a delay, then read their payload (catching reused buffers). */
class SlowBackend implements NbdBackend {
  readonly sizeBytes = 4 * GiB;
  readonly minimumBlockSize = 512;
  readonly preferredBlockSize = 4096;
  readonly maximumBlockSize = 8 * MiB;
  readonly readOnly = false;
  readonly blocks = new Map<number, Buffer>();
  readonly calls: string[] = [];

  canTrim(): boolean {
    return true;
  }
  canZero(): boolean {
    return false;
  }
  canFastZero(): boolean {
    return false;
  }
  canFua(): boolean {
    return false;
  }
  canFlush(): boolean {
    return true;
  }
  canExtents(): boolean {
    return false;
  }
  canMultiConn(): boolean {
    return false;
  }
  async pread(offset: number, target: Buffer): Promise<void> {
    // Later 4 KiB blocks answer sooner, so pipelined reads complete out of order.
    await sleep(50 - ((offset / 4096) % 16) * 3);
    target.fill(0);
    for (let at = 0; at < target.byteLength; at += 512) this.blocks.get(offset + at)?.copy(target, at);
  }
  async pwrite(offset: number, data: Buffer, flags: { fua: boolean }): Promise<void> {
    this.calls.push(`write ${offset} ${data.byteLength}${flags.fua ? " fua" : ""}`);
    await sleep(20);
    for (let at = 0; at < data.byteLength; at += 512) this.blocks.set(offset + at, Buffer.from(data.subarray(at, at + 512)));
  }
  zero(): void {
    throw new Error("not called: canZero is false");
  }
  trim(offset: number, length: number): void {
    this.calls.push(`trim ${offset} ${length}`);
  }
  flush(): void {
    this.calls.push("flush");
  }
  extents(): never {
    throw new Error("not called: canExtents is false");
  }
}

let backend: SlowBackend;
let nbd: TestNbdServer;

beforeAll(async () => {
  backend = new SlowBackend();
  const provider: NbdExportProvider = { list: () => [{ name: "slow" }], open: () => backend, pskKey: () => null };
  nbd = await startTestNbdServer({ provider });
});

afterAll(async () => {
  await nbd.close();
});

async function session(): Promise<{ client: RawNbdClient; flags: number }> {
  const client = await RawNbdClient.connect(nbd.socketPath);
  await client.greet();
  const { flags } = await client.negotiate("slow");
  return { client, flags };
}

test("flags follow the backend: FUA emulated through flush, WRITE_ZEROES emulated, no MULTI_CONN", async () => {
  const { client, flags } = await session();
  expect(flags & NBD_FLAG_SEND_FUA).toBe(NBD_FLAG_SEND_FUA);
  expect(flags & NBD_FLAG_SEND_WRITE_ZEROES).toBe(NBD_FLAG_SEND_WRITE_ZEROES);
  expect(flags & NBD_FLAG_SEND_TRIM).toBe(NBD_FLAG_SEND_TRIM);
  expect(flags & NBD_FLAG_CAN_MULTI_CONN).toBe(0);
  client.destroy();
});

test("pipelined slow writes keep their own payloads although they arrived split across reads", async () => {
  const { client } = await session();
  const payloads = [0x11, 0x22, 0x33].map((byte) => Buffer.alloc(512 * KiB, byte));
  client.write(Buffer.concat(payloads.map((payload, i) => requestBytes({ type: NBD_CMD_WRITE, handle: BigInt(i + 1), offset: i * MiB, length: payload.byteLength, payload }))));
  const handles = [];
  for (let i = 0; i < 3; i++) {
    const reply = await client.readAnyReply();
    expect(RawNbdClient.errnoOf(reply)).toBe(0);
    handles.push(reply.handle);
  }
  expect(handles.sort()).toEqual([1n, 2n, 3n]);
  for (let i = 0; i < 3; i++) {
    for (const at of [0, 256 * KiB, 512 * KiB - 512]) expect(backend.blocks.get(i * MiB + at)![0]).toBe([0x11, 0x22, 0x33][i]);
  }
  client.destroy();
});

test("replies to reads come back out of order, each with its handle and data", async () => {
  const { client } = await session();
  for (let i = 0; i < 8; i++) backend.blocks.set(8 * MiB + i * 4096, Buffer.alloc(512, i + 1));
  client.write(Buffer.concat(Array.from({ length: 8 }, (_, i) => requestBytes({ type: NBD_CMD_READ, handle: BigInt(100 + i), offset: 8 * MiB + i * 4096, length: 512 }))));
  const order: bigint[] = [];
  for (let i = 0; i < 8; i++) {
    const reply = await client.readAnyReply();
    order.push(reply.handle);
    expect(reply.kind === "chunk" && reply.payload[8]).toBe(Number(reply.handle) - 99);
  }
  expect(order).not.toEqual([...order].sort());
  client.destroy();
});

test("FUA becomes write + flush; WRITE_ZEROES becomes writes of zeroes; FAST_ZERO is refused at once", async () => {
  const { client } = await session();
  backend.calls.length = 0;
  client.request({ type: NBD_CMD_WRITE, flags: NBD_CMD_FLAG_FUA, offset: 0, length: 512, payload: Buffer.alloc(512, 9) });
  expect(RawNbdClient.errnoOf(await client.readAnyReply())).toBe(0);
  expect(backend.calls).toEqual(["write 0 512", "flush"]);
  backend.calls.length = 0;
  client.request({ type: NBD_CMD_WRITE_ZEROES, offset: 0, length: 3 * MiB });
  expect(RawNbdClient.errnoOf(await client.readAnyReply())).toBe(0);
  expect(backend.calls).toEqual([`write 0 ${MiB}`, `write ${MiB} ${MiB}`, `write ${2 * MiB} ${MiB}`]);
  expect(backend.blocks.get(0)![0]).toBe(0);
  client.request({ type: NBD_CMD_WRITE_ZEROES, flags: NBD_CMD_FLAG_FAST_ZERO, offset: 0, length: MiB });
  expect(RawNbdClient.errnoOf(await client.readAnyReply())).toBe(NBD_ERRNO.ENOTSUP);
  client.destroy();
});

test("a 3.5 GiB TRIM reaches the backend in 1 GiB slices; BLOCK_STATUS without extents reports data", async () => {
  const { client } = await session();
  backend.calls.length = 0;
  client.request({ type: NBD_CMD_TRIM, offset: 512 * MiB, length: 3.5 * GiB });
  expect(RawNbdClient.errnoOf(await client.readAnyReply())).toBe(0);
  expect(backend.calls).toEqual([`trim ${512 * MiB} ${GiB}`, `trim ${1.5 * GiB} ${GiB}`, `trim ${2.5 * GiB} ${GiB}`, `trim ${3.5 * GiB} ${0.5 * GiB}`]);
  client.request({ type: NBD_CMD_BLOCK_STATUS, offset: 0, length: GiB });
  const reply = await client.readAnyReply();
  expect(reply.kind === "chunk" && reply.type).toBe(NBD_REPLY_TYPE_BLOCK_STATUS);
  if (reply.kind === "chunk") expect([reply.payload.readUInt32BE(4), reply.payload.readUInt32BE(8)]).toEqual([GiB, 0]);
  client.destroy();
});
