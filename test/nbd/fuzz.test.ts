// Fuzzing the handshake and the transmission phase with fast-check over raw sockets. The server must never crash,
// each hostile connection must be answered or closed, and a healthy connection alongside keeps reading correct data.
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import {
  BASE_ALLOCATION,
  NBD_CMD_DISC,
  NBD_CMD_READ,
  NBD_CMD_WRITE,
  NBD_INFO_BLOCK_SIZE,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
} from "../../src/nbd/constants.ts";
import { nbdsh, requireClients } from "../support/nbd-clients.ts";
import { goPayload, metaPayload, optionBytes, RawNbdClient, requestBytes } from "../support/nbd-raw-client.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const SCRATCH_BYTES = 4 * MiB;
const PATTERN = Buffer.alloc(64 * KiB, 0x6b);
let f: NbdFixture;
let healthy: RawNbdClient;
/** Every fuzz connection, destroyed after each property (a failing run must not leak sockets into the next). */
const connections: RawNbdClient[] = [];

beforeAll(async () => {
  requireClients(["nbdsh"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "ref", sizeBytes: MiB });
  f.san.createVolume({ volumeGroup: "vg", name: "scratch", sizeBytes: SCRATCH_BYTES });
  f.san.write("vg/ref", 0, PATTERN);
  healthy = await RawNbdClient.connect(f.nbd.socketPath);
  await healthy.greet();
  await healthy.negotiate("vg/ref");
});

afterEach(() => {
  for (const client of connections.splice(0)) client.destroy();
});

afterAll(async () => {
  healthy.destroy();
  await f.teardown();
});

/** The healthy connection reads the reference pattern; libnbd does too on a fresh connection. */
async function healthyStillWorks(): Promise<void> {
  healthy.request({ type: NBD_CMD_READ, handle: 0x600dn, offset: 0, length: PATTERN.byteLength });
  const reply = await healthy.readAnyReply();
  expect(reply.kind === "chunk" && reply.payload.subarray(8).equals(PATTERN)).toBe(true);
}

/** Waits until the connection closes or goes quiet for `quietMs`, draining whatever the server sends. */
async function drain(client: RawNbdClient, quietMs = 30): Promise<void> {
  for (;;) {
    try {
      await client.read(1, quietMs);
    } catch {
      return;
    }
  }
}

async function openConnections(): Promise<number> {
  for (let i = 0; i < 100 && f.nbd.server.connectionCount > 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return f.nbd.server.connectionCount;
}

test("handshake: random byte streams after the greeting, in random pieces", async () => {
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 6 }), async (validFlags, pieces) => {
      const client = await RawNbdClient.connect(f.nbd.socketPath);
      await client.read(18);
      if (validFlags) client.write(Buffer.from([0, 0, 0, 3]));
      for (const piece of pieces) client.write(Buffer.from(piece));
      await drain(client);
      client.destroy();
    }),
    { numRuns: 150 },
  );
  expect(await openConnections()).toBe(1);
  await healthyStillWorks();
});

const names = fc.oneof(fc.constant("vg/scratch"), fc.constant(""), fc.string({ maxLength: 20 }), fc.constant("vg/ref\u0000x"));
const hostileOption = fc.oneof(
  fc.record({ option: fc.constantFrom(NBD_OPT_GO, NBD_OPT_INFO), data: fc.tuple(names, fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 5 })).map(([n, i]) => goPayload(n, i)) }),
  fc.record({
    option: fc.constantFrom(NBD_OPT_SET_META_CONTEXT, NBD_OPT_LIST_META_CONTEXT),
    data: fc.tuple(names, fc.array(fc.oneof(fc.constant(BASE_ALLOCATION), fc.constant("base:"), fc.string({ maxLength: 30 })), { maxLength: 4 })).map(([n, q]) => metaPayload(n, q)),
  }),
  fc.record({
    option: fc.oneof(fc.constantFrom(NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_SET_META_CONTEXT, NBD_OPT_LIST_META_CONTEXT, 11, 4), fc.integer({ min: 0, max: 0xffff_ffff })),
    data: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  }),
  // A payload whose inner lengths lie: truncate or pad a valid one.
  fc.record({
    option: fc.constantFrom(NBD_OPT_GO, NBD_OPT_SET_META_CONTEXT),
    data: fc.tuple(fc.integer({ min: -8, max: 8 }), fc.boolean()).map(([cut, meta]) => {
      const valid = meta ? metaPayload("vg/scratch", [BASE_ALLOCATION]) : goPayload("vg/scratch", [NBD_INFO_BLOCK_SIZE]);
      return cut < 0 ? valid.subarray(0, valid.byteLength + cut) : Buffer.concat([valid, Buffer.alloc(cut, 0xff)]);
    }),
  }),
);

test("handshake: structurally valid but hostile options are each answered (or the connection closed), then ABORT works", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(hostileOption, { minLength: 1, maxLength: 6 }), async (options) => {
      const client = await RawNbdClient.connect(f.nbd.socketPath);
      connections.push(client);
      await client.greet();
      let inTransmission = false;
      for (const { option, data } of options) {
        if (option === NBD_OPT_EXPORT_NAME || option === NBD_OPT_ABORT || option === NBD_OPT_STARTTLS) continue;
        client.write(optionBytes(option, data));
        for (;;) {
          const reply = await client.readOptionReply();
          expect(reply.option).toBe(option);
          if (reply.type === NBD_REP_ACK || reply.type >= 0x8000_0000) {
            inTransmission = option === NBD_OPT_GO && reply.type === NBD_REP_ACK;
            break;
          }
        }
        if (inTransmission) break;
      }
      if (inTransmission) {
        client.write(requestBytes({ type: NBD_CMD_DISC, length: 0 }));
      } else {
        expect((await client.option(NBD_OPT_ABORT))[0]!.type).toBe(NBD_REP_ACK);
      }
      await client.waitClosed();
    }),
    { numRuns: 150 },
  );
  expect(await openConnections()).toBe(1);
  await healthyStillWorks();
});

const request = fc.record({
  type: fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 6, 7), fc.integer({ min: 0, max: 65535 }).filter((t) => t !== NBD_CMD_DISC)),
  flags: fc.oneof(fc.constantFrom(0, 1, 2, 4, 8, 16, 3, 18), fc.integer({ min: 0, max: 65535 })),
  offset: fc.oneof(
    fc.integer({ min: 0, max: SCRATCH_BYTES / 512 }).map((n) => BigInt(n * 512)),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.integer({ min: 0, max: SCRATCH_BYTES }).map(BigInt),
  ),
  length: fc.oneof(fc.integer({ min: 0, max: 256 }).map((n) => n * 512), fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 70_000 })),
});

test("transmission: random requests each get exactly one well-formed reply, in both reply modes", async () => {
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(request, { minLength: 1, maxLength: 25 }), async (structured, requests) => {
      const client = await RawNbdClient.connect(f.nbd.socketPath);
      connections.push(client);
      await client.greet();
      await client.negotiate("vg/scratch", { structured });
      const sent = requests.map((r, i) => {
        // Writes carry their payload, kept small so a run stays fast.
        const length = r.type === NBD_CMD_WRITE ? r.length % (128 * KiB) : r.length;
        return { ...r, length, handle: BigInt(i + 1) };
      });
      for (const r of sent) {
        client.write(requestBytes({ ...r, payload: r.type === NBD_CMD_WRITE ? Buffer.alloc(r.length, 0x77) : undefined }));
        if (!structured) {
          // Simple replies carry no length, so read each before the next: success on READ means data follows.
          const reply = await client.readSimpleReply(r.type === NBD_CMD_READ ? r.length : 0);
          expect(reply.handle).toBe(r.handle);
        }
      }
      if (structured) {
        const pending = new Set(sent.map((r) => r.handle));
        while (pending.size > 0) {
          const reply = await client.readAnyReply();
          const r = sent[Number(reply.handle) - 1]!;
          // A READ must be answered with chunks; anything else may get a simple reply when it has no payload.
          if (r.type === NBD_CMD_READ) expect(reply.kind).toBe("chunk");
          if (reply.kind === "chunk") {
            expect(reply.flags & NBD_REPLY_FLAG_DONE).toBe(NBD_REPLY_FLAG_DONE);
            if (reply.type === NBD_REPLY_TYPE_OFFSET_DATA) expect(reply.payload.byteLength).toBe(8 + r.length);
          }
          expect(pending.delete(reply.handle)).toBe(true);
        }
      }
      client.write(requestBytes({ type: NBD_CMD_DISC, length: 0 }));
      await client.waitClosed();
    }),
    { numRuns: 120 },
  );
  expect(await openConnections()).toBe(1);
  await healthyStillWorks();
});

test("transmission: garbage after the handshake closes that connection only", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 28, maxLength: 200 }).filter((b) => Buffer.from(b).readUInt32BE(0) !== 0x25609513), async (bytes) => {
      const client = await RawNbdClient.connect(f.nbd.socketPath);
      connections.push(client);
      await client.greet();
      await client.negotiate("vg/scratch");
      client.write(Buffer.from(bytes));
      await client.waitClosed();
    }),
    { numRuns: 60 },
  );
  expect(await openConnections()).toBe(1);
  await healthyStillWorks();
  const result = await nbdsh(f.nbd.uri("vg/ref"), `print(bytes(h.pread(65536, 0)) == b"\\x6b" * 65536)`);
  expect(result.stdout.trim()).toBe("True");
});
