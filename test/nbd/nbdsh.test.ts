// nbdsh (libnbd's Python shell) against the server: pwrite/pread/flush/zero/trim, pipelined AIO and errors.
import { afterAll, beforeAll, expect, test } from "vitest";
import { nbdsh, requireClients } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["nbdsh"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 16 * MiB });
});

afterAll(async () => {
  await f.teardown();
});

async function sh(script: string): Promise<string> {
  const result = await nbdsh(f.nbd.uri("vg/v"), script);
  if (result.code !== 0) throw new Error(`nbdsh failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

test("pwrite, pread, flush: data lands in the engine", async () => {
  const out = await sh(`
buf = bytes(range(256)) * 64
h.pwrite(buf, 1048576)
h.pwrite(b"\\xee" * 512, 4096, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(16384, 1048576) == buf
print(h.pread(512, 4096).hex()[:8])
`);
  expect(out.trim()).toBe("eeeeeeee");
  const engine = f.san.read("vg/v", MiB, 16 * KiB);
  expect(engine.equals(Buffer.concat(Array.from({ length: 64 }, () => Buffer.from(Array.from({ length: 256 }, (_, i) => i)))))).toBe(true);
});

test("zero and trim read back as zeroes and unmap whole chunks", async () => {
  f.san.write("vg/v", 4 * MiB, Buffer.alloc(2 * MiB, 0x5a));
  await sh(`
h.zero(65536, 4194304)
h.zero(65536, 4194304 + 65536, nbd.CMD_FLAG_NO_HOLE)
h.trim(131072, 4194304 + 262144)
h.zero(4096, 4194304 + 1048576 + 512)
assert h.pread(65536, 4194304) == bytes(65536)
assert h.pread(65536, 4194304 + 65536) == bytes(65536)
assert h.pread(131072, 4194304 + 262144) == bytes(131072)
assert h.pread(4096, 4194304 + 1048576 + 512) == bytes(4096)
assert h.pread(512, 4194304 + 1048576) == b"\\x5a" * 512
h.flush()
`);
  const allocated = f.san.allocatedRanges("vg/v").filter((r) => r.offset >= 4 * MiB && r.offset < 6 * MiB);
  // 4 MiB..+64K unmapped (zero), +64K kept (NO_HOLE) and the untouched chunks after it, +256K..+384K trimmed.
  expect(allocated[0]).toEqual({ offset: 4 * MiB + 64 * KiB, length: 192 * KiB });
  expect(allocated[1]?.offset).toBe(4 * MiB + 384 * KiB);
});

test("a FAST_ZERO with NO_HOLE fails with ENOTSUP, a plain FAST_ZERO succeeds", async () => {
  const out = await sh(`
import errno
try:
    h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
    print("no error")
except nbd.Error as e:
    print(errno.errorcode[e.errnum])
h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO)
print("fast ok")
`);
  expect(out.trim().split("\n")).toEqual(["ENOTSUP", "fast ok"]);
});

test("64 pipelined AIO writes and reads all complete with the right data", async () => {
  const out = await sh(`
cookies = []
for i in range(64):
    cookies.append(h.aio_pwrite(bytes([i]) * 4096, 8388608 + i * 4096))
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    assert h.aio_command_completed(c)
bufs = [nbd.Buffer(4096) for i in range(64)]
cookies = [h.aio_pread(bufs[i], 8388608 + i * 4096) for i in range(64)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for i in range(64):
    assert h.aio_command_completed(cookies[i])
    assert bufs[i].to_bytearray() == bytes([i]) * 4096, i
print("ok")
`);
  expect(out.trim()).toBe("ok");
});

test("the server's errors reach the client: out-of-range (EINVAL) with strict checks off", async () => {
  const out = await sh(`
import errno
h2 = nbd.NBD()
h2.set_strict_mode(0)
h2.connect_uri(h.get_uri())
for name, call in [("read", lambda: h2.pread(512, 16 * 1048576)), ("write", lambda: h2.pwrite(b"x" * 512, 16 * 1048576)), ("unaligned", lambda: h2.pread(100, 1))]:
    try:
        call()
        print(name, "ok")
    except nbd.Error as e:
        print(name, errno.errorcode[e.errnum])
print(len(h2.pread(512, 0)))
`);
  expect(out.trim().split("\n")).toEqual(["read EINVAL", "write EINVAL", "unaligned EINVAL", "512"]);
});
