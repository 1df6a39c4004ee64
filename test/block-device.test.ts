// Block device end to end, as root: an esan volume served by `esan san serve` becomes a real block device through
// nbdfuse and a loop device, gets an ext4 filesystem and files; a snapshot taken through the SAN API (CLI --san)
// is cloned, and the clone, attached the same way, holds exactly those files even after the volume changed.
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { attachNbdBlockDevice, missingBlockPrerequisites, mountExt4 } from "./support/block-attach.ts";
import { ChildServer, CleanupStack, runOk } from "./support/block-process.ts";

const ESAN = path.resolve(import.meta.dirname, "..", "bin", "esan");
const VOLUME_SIZE = "256MiB";

/** The files the test writes: name → content. */
function makeFiles(): Map<string, Buffer> {
  return new Map([
    ["notes.txt", Buffer.from("written through nbdfuse, a loop device and ext4\n")],
    ["small.bin", randomBytes(4096)],
    ["medium.bin", randomBytes(1024 * 1024 + 123)],
    [path.join("nested", "large.bin"), randomBytes(24 * 1024 * 1024)],
  ]);
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

describe("block device end to end (nbdfuse + losetup + ext4)", () => {
  const cleanup = new CleanupStack();

  afterEach(async () => {
    const failures = await cleanup.runAll();
    if (failures.length > 0) throw new Error(`Cleanup after the block-device test failed:\n- ${failures.join("\n- ")}`);
  });

  it("mounts a volume, writes files, and finds them in a clone of its snapshot", async () => {
    const missing = await missingBlockPrerequisites();
    if (missing.length > 0) {
      throw new Error(`The block-device test needs ${missing.join(", ")}. Run it as root on a machine set up by \`bash scripts/setup\`.`);
    }

    const root = fs.mkdtempSync(path.join(os.tmpdir(), "esan-block-"));
    cleanup.add(`remove ${root}`, () => fs.rmSync(root, { recursive: true, force: true }));
    const dataDir = path.join(root, "san");
    const apiSocket = path.join(root, "api.sock");
    const nbdSocket = path.join(root, "nbd.sock");
    await runOk(ESAN, ["san", "create", "--data-dir", dataDir, "--capacity", "2GiB"]);
    const service = new ChildServer("esan san serve", ESAN, ["san", "serve", "--data-dir", dataDir, "--api", `unix://${apiSocket}`, "--nbd", `unix://${nbdSocket}`, "--nbd-plain-unix"]);
    cleanup.add("stop esan san serve", () => service.stop());
    await service.waitForSocket(apiSocket);
    await service.waitForSocket(nbdSocket);
    const esan = async (...args: string[]): Promise<Record<string, unknown>> =>
      JSON.parse(await runOk(ESAN, ["--san", `unix://${apiSocket}`, "--json", ...args])) as Record<string, unknown>;
    const uriOf = (id: string) => `nbd+unix:///${id}?socket=${nbdSocket}`;
    const mountDir = path.join(root, "mnt");

    await esan("volume-group", "create", "vg1");
    await esan("volume", "create", "vg1/disk", "--size", VOLUME_SIZE);

    // Format the volume, fill it with files, and take everything down again.
    const files = makeFiles();
    const disk = await attachNbdBlockDevice(uriOf("vg1/disk"), root, cleanup);
    await runOk("mkfs.ext4", ["-q", disk.device]);
    let unmount = await mountExt4(disk.device, mountDir, cleanup);
    for (const [name, content] of files) {
      fs.mkdirSync(path.dirname(path.join(mountDir, name)), { recursive: true });
      fs.writeFileSync(path.join(mountDir, name), content);
    }
    await runOk("sync", ["-f", mountDir]);
    await unmount();
    await disk.release();

    const snapshot = await esan("snapshot", "create", "vg1/snap1", "--source", "vg1/disk");
    expect(snapshot.sourceId).toBe("vg1/disk");

    // Change the volume after the snapshot: the clone must not see any of this.
    const again = await attachNbdBlockDevice(uriOf("vg1/disk"), root, cleanup);
    unmount = await mountExt4(again.device, mountDir, cleanup);
    fs.writeFileSync(path.join(mountDir, "notes.txt"), "changed after the snapshot\n");
    fs.rmSync(path.join(mountDir, "medium.bin"));
    fs.writeFileSync(path.join(mountDir, "after-snapshot.bin"), randomBytes(64 * 1024));
    await runOk("sync", ["-f", mountDir]);
    await unmount();
    await again.release();

    const clone = await esan("volume", "create", "vg1/restored", "--size", VOLUME_SIZE, "--source", "snapshot:vg1/snap1");
    expect(clone.creationData).toMatchObject({ kind: "snapshot", sourceId: "vg1/snap1" });
    const restored = await attachNbdBlockDevice(uriOf("vg1/restored"), root, cleanup);
    await runOk("e2fsck", ["-f", "-n", restored.device]);
    unmount = await mountExt4(restored.device, mountDir, cleanup);
    for (const [name, content] of files) {
      const found = fs.readFileSync(path.join(mountDir, name));
      expect({ name, bytes: found.length, sha256: sha256(found) }).toEqual({ name, bytes: content.length, sha256: sha256(content) });
    }
    expect(fs.existsSync(path.join(mountDir, "after-snapshot.bin"))).toBe(false);
    await unmount();
    await restored.release();

    expect(service.exitStatus, service.output).toBeUndefined();
  }, 300_000);
});
