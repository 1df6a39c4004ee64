// The fast data path against a real SAN: pipelined bursts mixing synchronous small reads, thread-pool large reads
// and writes; payloads that trickle in over many socket reads; FUA and FLUSH across connections; connection limits.
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, expect, test } from "vitest";
import { NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE, NBD_REPLY_TYPE_OFFSET_DATA } from "../../src/nbd/constants.ts";
import { NbdServer } from "../../src/nbd/server.ts";
import { RawNbdClient, requestBytes } from "../support/nbd-raw-client.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let f: NbdFixture;

beforeAll(async () => {
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 64 * MiB });
  for (let chunk = 0; chunk < 64; chunk++) f.san.write("vg/v", chunk * 64 * KiB, Buffer.alloc(64 * KiB, chunk + 1));
});

afterAll(async () => {
  await f.teardown();
});

async function session(): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(f.nbd.socketPath);
  await client.greet();
  await client.negotiate("vg/v");
  return client;
}

/** What a 64 KiB-chunk-patterned read of [offset, offset+length) holds. */
function expected(offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at++) out[at] = Math.floor((offset + at) / (64 * KiB)) + 1;
  return out;
}

test("a pipelined burst of small and large reads and writes gets every reply, each with its own data", async () => {
  const client = await session();
  const reads = new Map<bigint, { offset: number; length: number }>();
  const burst: Buffer[] = [];
  for (let i = 0; i < 48; i++) {
    const handle = BigInt(i + 1);
    const large = i % 6 === 0;
    const offset = large ? (i % 3) * 256 * KiB : ((i * 37) % 1024) * 4 * KiB;
    const length = large ? 256 * KiB + 64 * KiB : 4 * KiB;
    if (i % 5 === 4) {
      burst.push(requestBytes({ type: NBD_CMD_WRITE, handle, offset: 32 * MiB + i * 8 * KiB, length: 8 * KiB, payload: Buffer.alloc(8 * KiB, i) }));
    } else {
      reads.set(handle, { offset, length });
      burst.push(requestBytes({ type: NBD_CMD_READ, handle, offset, length }));
    }
  }
  client.write(Buffer.concat(burst));
  for (let i = 0; i < 48; i++) {
    const reply = await client.readAnyReply();
    expect(RawNbdClient.errnoOf(reply)).toBe(0);
    const read = reads.get(reply.handle);
    if (!read) continue;
    expect(reply.kind === "chunk" && reply.type).toBe(NBD_REPLY_TYPE_OFFSET_DATA);
    if (reply.kind === "chunk") expect(reply.payload.subarray(8).equals(expected(read.offset, read.length))).toBe(true);
  }
  for (let i = 4; i < 48; i += 5) expect(f.san.read("vg/v", 32 * MiB + i * 8 * KiB, 8 * KiB).equals(Buffer.alloc(8 * KiB, i))).toBe(true);
  client.destroy();
});

test("a write whose payload trickles in over many socket reads lands whole, and the next request after it is served", async () => {
  const client = await session();
  const payload = Buffer.alloc(3 * MiB + 512);
  for (let at = 0; at < payload.byteLength; at++) payload[at] = (at * 7) & 0xff;
  const bytes = Buffer.concat([requestBytes({ type: NBD_CMD_WRITE, handle: 7n, offset: 40 * MiB, length: payload.byteLength, payload }), requestBytes({ type: NBD_CMD_READ, handle: 8n, offset: 40 * MiB, length: 4096 })]);
  for (let at = 0; at < bytes.byteLength; at += 200 * KiB + 3) {
    client.write(bytes.subarray(at, at + 200 * KiB + 3));
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(RawNbdClient.errnoOf(await client.readAnyReply())).toBe(0);
  const read = await client.readAnyReply();
  expect(read.kind === "chunk" && read.payload.subarray(8).equals(payload.subarray(0, 4096))).toBe(true);
  expect(f.san.read("vg/v", 40 * MiB, payload.byteLength).equals(payload)).toBe(true);
  client.destroy();
});

/** The volume's mapped chunk count as committed to the metadata database (what survives a crash). */
function committedMappedChunks(): number {
  const db = new DatabaseSync(path.join(f.dir, "san", "meta.sqlite"), { readOnly: true });
  try {
    return (db.prepare("SELECT mapped_chunks AS n FROM images WHERE id = 'vg/v'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

test("FUA writes on two connections are committed at once; a FLUSH on a third commits writes acknowledged elsewhere", async () => {
  const [a, b, c] = [await session(), await session(), await session()];
  f.san.flush();
  const before = committedMappedChunks();
  for (let i = 0; i < 8; i++) {
    a.request({ type: NBD_CMD_WRITE, flags: NBD_CMD_FLAG_FUA, handle: BigInt(i), offset: 48 * MiB + i * 128 * KiB, length: 4096, payload: Buffer.alloc(4096, 1) });
    b.request({ type: NBD_CMD_WRITE, flags: NBD_CMD_FLAG_FUA, handle: BigInt(i), offset: 48 * MiB + i * 128 * KiB + 64 * KiB, length: 4096, payload: Buffer.alloc(4096, 2) });
  }
  for (let i = 0; i < 8; i++) {
    expect(RawNbdClient.errnoOf(await a.readAnyReply())).toBe(0);
    expect(RawNbdClient.errnoOf(await b.readAnyReply())).toBe(0);
  }
  expect(committedMappedChunks()).toBe(before + 16);
  a.request({ type: NBD_CMD_WRITE, handle: 99n, offset: 56 * MiB, length: 4096, payload: Buffer.alloc(4096, 3) });
  expect(RawNbdClient.errnoOf(await a.readAnyReply())).toBe(0);
  expect(committedMappedChunks()).toBe(before + 16);
  c.request({ type: NBD_CMD_FLUSH, handle: 100n, length: 0 });
  expect(RawNbdClient.errnoOf(await c.readAnyReply())).toBe(0);
  expect(committedMappedChunks()).toBe(before + 17);
  for (const client of [a, b, c]) client.destroy();
});

test("a listener refuses connections beyond maxConnections and takes new ones once others leave", async () => {
  const socketPath = path.join(f.nbd.dir, "limited.sock");
  const server = new NbdServer({ provider: f.provider, listen: [`unix://${socketPath}`], tls: "optional", maxConnections: 2 });
  await server.listen();
  try {
    const [first, second, third] = [await RawNbdClient.connect(socketPath), await RawNbdClient.connect(socketPath), await RawNbdClient.connect(socketPath)];
    await first.greet();
    await second.greet();
    await third.waitClosed();
    first.destroy();
    await first.closed;
    await expect.poll(() => server.connectionCount).toBe(1);
    const fourth = await RawNbdClient.connect(socketPath);
    await fourth.greet();
    second.destroy();
    fourth.destroy();
  } finally {
    await server.close();
  }
});
