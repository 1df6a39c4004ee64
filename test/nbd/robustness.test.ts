// Malformed, truncated and hostile input over raw sockets: each bad connection is answered or closed, and the server
// and every other connection carry on.
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import {
  BASE_ALLOCATION,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_READ,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_ERRNO,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_EXTENDED_HEADERS,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
} from "../../src/nbd/constants.ts";
import { goPayload, metaPayload, optionBytes, RawNbdClient, requestBytes } from "../support/nbd-raw-client.ts";
import { type NbdFixture, startNbdFixture, startTestNbdServer } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let f: NbdFixture;
let bystander: RawNbdClient;
const clients: RawNbdClient[] = [];

async function connect(): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(f.nbd.socketPath);
  clients.push(client);
  return client;
}

async function session(name = "vg/v", options: { structured?: boolean; meta?: boolean } = {}): Promise<RawNbdClient> {
  const client = await connect();
  await client.greet();
  await client.negotiate(name, options);
  return client;
}

/** The bystander's connection, opened before any abuse, must still read correct data. */
async function bystanderStillWorks(): Promise<void> {
  bystander.request({ type: NBD_CMD_READ, handle: 0xb5n, offset: 4096, length: 4096 });
  const reply = await bystander.readAnyReply();
  expect(reply.kind === "chunk" && reply.type === NBD_REPLY_TYPE_OFFSET_DATA).toBe(true);
  if (reply.kind === "chunk") expect(reply.payload.subarray(8).equals(Buffer.alloc(4096, 0x3c))).toBe(true);
}

beforeAll(async () => {
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 16 * MiB });
  f.san.write("vg/v", 0, Buffer.alloc(64 * KiB, 0x3c));
  f.san.createSnapshot({ volumeGroup: "vg", name: "s", sourceVolumeId: "vg/v" });
  bystander = await RawNbdClient.connect(f.nbd.socketPath);
  await bystander.greet();
  await bystander.negotiate("vg/v");
});

afterEach(async () => {
  await bystanderStillWorks();
  for (const client of clients.splice(0)) client.destroy();
});

afterAll(async () => {
  bystander.destroy();
  await f.teardown();
});

const errno = async (client: RawNbdClient): Promise<number> => RawNbdClient.errnoOf(await client.readAnyReply());

/** An option header announcing `length` bytes of data, with none of the data sent. */
function oversizedOptionHeader(length: number): Buffer {
  const header = optionBytes(NBD_OPT_GO);
  header.writeUInt32BE(length, 12);
  return header;
}

test.each([
  ["a bad option magic", Buffer.concat([Buffer.from("IHAVEOPX"), Buffer.alloc(8)])],
  ["an option longer than 64 KiB (closed before its data arrives)", oversizedOptionHeader(1024 * 1024)],
  ["random garbage", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
])("the handshake closes on %s", async (_name, bytes) => {
  const client = await connect();
  await client.greet();
  client.write(bytes);
  await client.waitClosed();
});

test("unknown client flags close the connection", async () => {
  const client = await connect();
  await client.greet(NBD_FLAG_C_FIXED_NEWSTYLE | (1 << 7));
  await client.waitClosed();
});

test("EXPORT_NAME: a known export gets size and flags (with and without zero padding), an unknown one a hang-up", async () => {
  for (const noZeroes of [true, false]) {
    const client = await connect();
    await client.greet(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0));
    client.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from("vg/s"));
    const reply = await client.read(noZeroes ? 10 : 134);
    expect(Number(reply.readBigUInt64BE(0))).toBe(16 * MiB);
    expect(reply.readUInt16BE(8) & NBD_FLAG_READ_ONLY).toBe(NBD_FLAG_READ_ONLY);
    client.request({ type: NBD_CMD_READ, length: 512 });
    const read = await client.readSimpleReply(512);
    expect(read.data[0]).toBe(0x3c);
  }
  const client = await connect();
  await client.greet();
  client.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from("vg/nope"));
  await client.waitClosed();
});

test("unknown options and EXTENDED_HEADERS get ERR_UNSUP, bad payloads ERR_INVALID, and GO still works after", async () => {
  const client = await connect();
  await client.greet();
  expect((await client.option(NBD_OPT_EXTENDED_HEADERS))[0]!.type).toBe(NBD_REP_ERR_UNSUP);
  expect((await client.option(4242, Buffer.from("whatever")))[0]!.type).toBe(NBD_REP_ERR_UNSUP);
  expect((await client.option(NBD_OPT_GO, Buffer.from([0, 0, 0, 99, 1])))[0]!.type).toBe(NBD_REP_ERR_INVALID);
  expect((await client.option(NBD_OPT_STRUCTURED_REPLY, Buffer.from("x")))[0]!.type).toBe(NBD_REP_ERR_INVALID);
  expect((await client.option(NBD_OPT_SET_META_CONTEXT, metaPayload("vg/v", [BASE_ALLOCATION])))[0]!.type).toBe(NBD_REP_ERR_INVALID);
  expect((await client.option(NBD_OPT_STARTTLS, Buffer.from("x")))[0]!.type).toBe(NBD_REP_ERR_INVALID);
  expect((await client.option(NBD_OPT_GO, goPayload("vg/nope")))[0]!.type).toBe(NBD_REP_ERR_UNKNOWN);
  await client.negotiate("vg/v");
  client.request({ type: NBD_CMD_READ, length: 512 });
  expect(await errno(client)).toBe(0);
});

test("INFO answers size, block sizes, name and description without entering transmission", async () => {
  const client = await connect();
  await client.greet();
  const replies = await client.option(NBD_OPT_INFO, goPayload("vg/s", [NBD_INFO_NAME, NBD_INFO_DESCRIPTION]));
  expect(replies.at(-1)!.type).toBe(NBD_REP_ACK);
  const infos = new Map(replies.filter((r) => r.type === NBD_REP_INFO).map((r) => [r.data.readUInt16BE(0), r.data.subarray(2)]));
  expect(Number(infos.get(0)!.readBigUInt64BE(0))).toBe(16 * MiB);
  expect([infos.get(3)!.readUInt32BE(0), infos.get(3)!.readUInt32BE(4), infos.get(3)!.readUInt32BE(8)]).toEqual([512, 64 * KiB, 32 * MiB]);
  expect(infos.get(1)!.toString()).toBe("vg/s");
  expect(infos.get(2)!.toString()).toBe("snapshot vg/s of vg/v");
  expect((await client.option(NBD_OPT_STRUCTURED_REPLY))[0]!.type).toBe(NBD_REP_ACK);
  const listed = await client.option(NBD_OPT_LIST_META_CONTEXT, metaPayload("vg/s", []));
  expect(listed.map((r) => r.type)).toEqual([NBD_REP_META_CONTEXT, NBD_REP_ACK]);
  expect(listed[0]!.data.subarray(4).toString()).toBe(BASE_ALLOCATION);
  expect((await client.option(NBD_OPT_ABORT))[0]!.type).toBe(NBD_REP_ACK);
  await client.waitClosed();
  expect(f.provider.openBackends).toBe(1);
});

test("out-of-range, unaligned, oversized and unknown requests get errors and the connection carries on", async () => {
  const client = await session();
  const cases: [Parameters<RawNbdClient["request"]>[0], number][] = [
    [{ type: NBD_CMD_READ, offset: 16 * MiB, length: 512 }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_READ, offset: 2n ** 63n, length: 512 }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_READ, offset: 100, length: 512 }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_READ, offset: 0, length: 32 * MiB + 512 }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_WRITE, offset: 16 * MiB - 512, length: 1024, payload: Buffer.alloc(1024) }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_WRITE_ZEROES, offset: 0, length: 16 * MiB, flags: NBD_CMD_FLAG_FAST_ZERO | 1 << 12 }, NBD_ERRNO.EINVAL],
    [{ type: 99, offset: 0, length: 512 }, NBD_ERRNO.EINVAL],
    [{ type: NBD_CMD_READ, offset: 0, length: 0 }, NBD_ERRNO.EINVAL],
  ];
  for (const [request, expected] of cases) {
    client.request({ ...request, handle: 77n });
    const reply = await client.readAnyReply();
    expect(reply.kind === "chunk" && reply.type).toBe(NBD_REPLY_TYPE_ERROR);
    expect(RawNbdClient.errnoOf(reply)).toBe(expected);
    expect(reply.handle).toBe(77n);
  }
  client.request({ type: NBD_CMD_READ, offset: 0, length: 512 });
  expect(await errno(client)).toBe(0);
});

test("a write to the read-only snapshot gets EPERM and its payload is consumed", async () => {
  const client = await session("vg/s");
  client.request({ type: NBD_CMD_WRITE, offset: 0, length: 4096, payload: Buffer.alloc(4096, 0xff) });
  expect(await errno(client)).toBe(NBD_ERRNO.EPERM);
  client.request({ type: NBD_CMD_READ, offset: 0, length: 512 });
  const reply = await client.readAnyReply();
  expect(reply.kind === "chunk" && reply.payload[8]).toBe(0x3c);
});

test("BLOCK_STATUS without a negotiated context is EINVAL; with one it answers", async () => {
  const without = await session("vg/v", { meta: false });
  without.request({ type: NBD_CMD_BLOCK_STATUS, length: MiB });
  expect(await errno(without)).toBe(NBD_ERRNO.EINVAL);
  const withContext = await session();
  withContext.request({ type: NBD_CMD_BLOCK_STATUS, length: MiB });
  const reply = await withContext.readAnyReply();
  expect(reply.kind === "chunk" && reply.type).toBe(NBD_REPLY_TYPE_BLOCK_STATUS);
  if (reply.kind === "chunk") expect([reply.payload.readUInt32BE(4), reply.payload.readUInt32BE(8), reply.payload.readUInt32BE(12)]).toEqual([64 * KiB, 0, MiB - 64 * KiB]);
});

test("without structured replies, reads and errors use simple replies", async () => {
  const client = await session("vg/v", { structured: false });
  client.request({ type: NBD_CMD_READ, offset: 0, length: 4096, handle: 5n });
  const read = await client.readSimpleReply(4096);
  expect([read.errno, read.handle, read.data[4095]]).toEqual([0, 5n, 0x3c]);
  client.request({ type: NBD_CMD_READ, offset: 16 * MiB, length: 4096, handle: 6n });
  const refused = await client.readSimpleReply(4096);
  expect([refused.errno, refused.handle, refused.data.byteLength]).toEqual([NBD_ERRNO.EINVAL, 6n, 0]);
});

test("a WRITE beyond the 32 MiB payload limit, a bad request magic, and garbage after GO each end only that connection", async () => {
  const big = await session();
  big.request({ type: NBD_CMD_WRITE, offset: 0, length: 64 * MiB });
  await big.waitClosed();
  const magic = await session();
  magic.write(Buffer.alloc(28, 0xee));
  await magic.waitClosed();
  const garbage = await session();
  garbage.write(Buffer.from("\u0000garbage after the handshake".repeat(4)));
  await garbage.waitClosed();
});

test("100 pipelined requests in one write all get replies with their own handles; DISC waits for them", async () => {
  const client = await session();
  const requests: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    requests.push(
      i % 2 === 0
        ? requestBytes({ type: NBD_CMD_WRITE, handle: BigInt(1000 + i), offset: MiB + i * 4096, length: 4096, payload: Buffer.alloc(4096, i) })
        : requestBytes({ type: NBD_CMD_READ, handle: BigInt(1000 + i), offset: MiB + (i - 1) * 4096, length: 4096 }),
    );
  }
  requests.push(requestBytes({ type: NBD_CMD_DISC, length: 0 }));
  client.write(Buffer.concat(requests));
  const seen = new Set<bigint>();
  for (let i = 0; i < 100; i++) {
    const reply = await client.readAnyReply();
    seen.add(reply.handle);
    if (reply.kind === "chunk" && reply.type === NBD_REPLY_TYPE_OFFSET_DATA) {
      const index = Number(reply.handle) - 1000;
      expect(reply.payload[8]).toBe(index - 1);
    } else {
      expect(RawNbdClient.errnoOf(reply)).toBe(0);
    }
  }
  expect(seen.size).toBe(100);
  await client.waitClosed();
});

test("a client that stalls mid-handshake is dropped after the handshake timeout", async () => {
  const quick = await startTestNbdServer({ provider: f.provider, handshakeTimeoutMs: 300 });
  try {
    const stalled = await RawNbdClient.connect(quick.socketPath);
    await stalled.greet();
    stalled.write(optionBytes(NBD_OPT_GO).subarray(0, 10));
    const started = Date.now();
    await stalled.waitClosed(5000);
    expect(Date.now() - started).toBeLessThan(3000);
    const healthy = await RawNbdClient.connect(quick.socketPath);
    await healthy.greet();
    await healthy.negotiate("vg/v");
    // Outlive the 300 ms handshake timer: a session past its handshake must not be cut by it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    healthy.request({ type: NBD_CMD_READ, length: 512 });
    expect(await errno(healthy)).toBe(0);
    healthy.destroy();
  } finally {
    await quick.close();
  }
});

test("STARTTLS on a listener with TLS off is refused with ERR_POLICY and the session continues", async () => {
  const plain = await startTestNbdServer({ provider: f.provider, tls: "off" });
  try {
    const client = await RawNbdClient.connect(plain.socketPath);
    await client.greet();
    expect((await client.option(NBD_OPT_STARTTLS))[0]!.type).toBe(NBD_REP_ERR_POLICY);
    await client.negotiate("vg/v");
    client.destroy();
  } finally {
    await plain.close();
  }
});

test("connections that vanish mid-request release their exports", async () => {
  const before = f.provider.openBackends;
  for (let i = 0; i < 5; i++) {
    const client = await session();
    client.write(Buffer.alloc(13, 0x25));
    client.destroy();
  }
  // Poll for the release rather than sleep a guessed time; give up after 5 s.
  const deadline = Date.now() + 5000;
  while (f.provider.openBackends !== before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(f.provider.openBackends).toBe(before);
});
