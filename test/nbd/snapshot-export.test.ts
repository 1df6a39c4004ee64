// A snapshot is exported read-only: clients see READ_ONLY, writes get EPERM, and reads show the snapshot's data.
import { afterAll, beforeAll, expect, test } from "vitest";
import { nbdsh, requireClients, runClient, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["nbdinfo", "nbdsh", "qemu-io"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 8 * MiB });
  f.san.write("vg/v", 0, Buffer.alloc(MiB, 0x61));
  f.san.createSnapshot({ volumeGroup: "vg", name: "monday", sourceVolumeId: "vg/v" });
  f.san.write("vg/v", 0, Buffer.alloc(MiB, 0x62));
});

afterAll(async () => {
  await f.teardown();
});

test("nbdinfo reports the snapshot read-only without write capabilities", async () => {
  const { stdout } = await runClientOk("nbdinfo", ["--json", f.nbd.uri("vg/monday")]);
  const info = JSON.parse(stdout) as { exports: Record<string, unknown>[] };
  expect(info.exports[0]).toMatchObject({ is_read_only: true, can_trim: false, can_zero: false, can_fua: false, can_flush: true });
});

test("reads show the data as of the snapshot while the volume moved on", async () => {
  const result = await nbdsh(f.nbd.uri("vg/monday"), `print(bytes(h.pread(4096, 0)[:4]), bytes(h.pread(4096, 1048576)[:4]))`);
  expect(result.stdout.trim()).toBe(`b'aaaa' b'\\x00\\x00\\x00\\x00'`);
});

test("write, zero and trim are refused with EPERM by the server itself", async () => {
  const result = await nbdsh(
    f.nbd.uri("vg/monday"),
    `
import errno
h2 = nbd.NBD()
h2.set_strict_mode(0)
h2.connect_uri(h.get_uri())
for name, call in [("write", lambda: h2.pwrite(b"x" * 512, 0)), ("zero", lambda: h2.zero(512, 0)), ("trim", lambda: h2.trim(512, 0))]:
    try:
        call()
        print(name, "ok")
    except nbd.Error as e:
        print(name, errno.errorcode[e.errnum])
`,
  );
  expect(result.stdout.trim().split("\n")).toEqual(["write EPERM", "zero EPERM", "trim EPERM"]);
  expect(f.san.read("vg/monday", 0, 1)[0]).toBe(0x61);
});

test("qemu-io cannot write to the snapshot export", async () => {
  const result = await runClient("qemu-io", ["-f", "raw", "-c", "write -P 0x55 0 4k", f.nbd.uri("vg/monday")]);
  expect(`${result.stdout}${result.stderr}`).toMatch(/read-only|Operation not permitted|Permission denied/i);
  expect(f.san.read("vg/monday", 0, 1)[0]).toBe(0x61);
});
