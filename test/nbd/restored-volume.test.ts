// A volume restored from a disk snapshot is served over NBD while it hydrates (the engine's async I/O path).
import { afterAll, beforeAll, expect, test } from "vitest";
import { nbdsh, requireClients } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["nbdsh"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "src", sizeBytes: 64 * MiB });
  for (let i = 0; i < 16; i++) f.san.write("vg/src", i * 4 * MiB, Buffer.alloc(MiB, i + 1));
  f.san.exportDiskSnapshot({ name: "backup", sourceId: "vg/src" });
  await f.san.waitForDiskSnapshot("backup");
});

afterAll(async () => {
  await f.teardown();
});

test("reads see the disk snapshot and writes stick, during and after hydration", async () => {
  const restored = f.san.createVolume({ volumeGroup: "vg", name: "back", sizeBytes: 64 * MiB, source: { kind: "diskSnapshot", id: "backup" } });
  expect(restored.hydration?.state).toBe("hydrating");
  const result = await nbdsh(
    f.nbd.uri("vg/back"),
    `
ok = all(bytes(h.pread(1048576, i * 4194304)) == bytes([i + 1]) * 1048576 for i in range(16))
h.pwrite(b"\\xab" * 65536, 2 * 1048576, nbd.CMD_FLAG_FUA)
h.zero(1048576, 4194304)
print(ok, bytes(h.pread(512, 2 * 1048576))[:2].hex(), bytes(h.pread(512, 4194304))[:2].hex())
`,
  );
  expect(result.stderr).toBe("");
  expect(result.stdout.trim()).toBe("True abab 0000");
  await f.san.waitForHydration("vg/back");
  expect(f.san.read("vg/back", 2 * MiB, 2)[0]).toBe(0xab);
  expect(f.san.read("vg/back", 8 * MiB, 1)[0]).toBe(3);
  expect(f.san.read("vg/back", 4 * MiB, 1)[0]).toBe(0);
});
