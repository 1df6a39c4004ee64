// The CSI Node service against a real `esan san serve`, as root: real credentials from attach, nbdfuse over
// TLS-PSK, loop devices, mkfs, mount and bind mounts. Handlers are called directly with decoded request objects.
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CsiError } from "../../src/csi/errors.ts";
import { PUBLISH_CONTEXT_KEYS } from "../../src/csi/publish-context.ts";
import { createNodeService, type NodeService } from "../../src/csi/node/service.ts";
import type { VolumeCapability } from "../../src/csi/node/types.ts";
import { runCommand, runOk } from "../support/block-process.ts";
import { capturingLogger, loopsUnder, makeRoot, MiB, missingNodePrerequisites, mountsUnder, processesUnder, requirePrerequisites, startSan, sweep, type TestSan } from "../support/csi-node-env.ts";

const NODE_ID = "node-a";
const missing = await missingNodePrerequisites();

const mountCapability = (fsType = "ext4", mode = "SINGLE_NODE_WRITER", mountFlags: string[] = []): VolumeCapability => ({
  mount: { fsType, mountFlags, volumeMountGroup: "" },
  accessMode: { mode },
  accessType: "mount",
});
const blockCapability = (mode = "SINGLE_NODE_WRITER"): VolumeCapability => ({ block: {}, accessMode: { mode }, accessType: "block" });

/** The gRPC code and message of a rejected handler call. */
async function refusal(call: Promise<unknown>): Promise<{ code: status; message: string }> {
  try {
    await call;
  } catch (error) {
    expect(error).toBeInstanceOf(CsiError);
    return { code: (error as CsiError).code, message: (error as CsiError).message };
  }
  throw new Error("The call succeeded, but a refusal was expected.");
}

function findmnt(target: string): { fstype: string; options: string } | undefined {
  const line = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .findLast((fields) => fields[4] === target);
  if (!line) return undefined;
  return { fstype: line[line.indexOf("-") + 1] ?? "", options: line[5] ?? "" };
}

describe("CSI node service (nbdfuse + loop + mount, against esan san serve)", () => {
  beforeAll(() => requirePrerequisites(missing, "The CSI node tests"));

  let root: string;
  let san: TestSan;
  let node: NodeService;
  const logLines: string[] = [];
  let volumeCount = 0;

  const stagingPath = (name: string) => path.join(root, "kubelet", "staging", name);
  const targetPath = (name: string) => path.join(root, "kubelet", "pods", name);

  /** A new volume of `sizeBytes` attached to the node: its id and publish_context. */
  async function newVolume(sizeBytes = 64 * MiB): Promise<{ volumeId: string; publishContext: Record<string, string> }> {
    const volumeId = await san.createVolume(`v${++volumeCount}`, sizeBytes);
    return { volumeId, publishContext: await san.publishContext(volumeId, NODE_ID) };
  }

  beforeAll(async () => {
    root = makeRoot("esan-csi-node");
    san = await startSan(root);
    node = await createNodeService({ nodeId: NODE_ID, stateDir: path.join(root, "state"), maxVolumes: 16, logger: capturingLogger(logLines) });
  });

  afterEach(async () => {
    // Every test unpublishes and unstages what it made; anything found here is a leak (and is removed all the same).
    const leftovers = await sweep(root);
    expect(leftovers).toEqual([]);
  });

  afterAll(async () => {
    await sweep(root);
    await node?.close();
    await san?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("reports its capabilities and node info", async () => {
    const capabilities = await node.nodeGetCapabilities({});
    expect(capabilities.capabilities.map((c) => c.rpc.type).sort()).toEqual(
      ["EXPAND_VOLUME", "GET_VOLUME_STATS", "SINGLE_NODE_MULTI_WRITER", "STAGE_UNSTAGE_VOLUME", "VOLUME_CONDITION"].sort(),
    );
    expect(await node.nodeGetInfo({})).toEqual({ nodeId: NODE_ID, maxVolumesPerNode: 16, accessibleTopology: null });
  });

  it("stages a blank volume as ext4 with the mount flags, publishes it writable and read-only, and tears it all down", async () => {
    const { volumeId, publishContext } = await newVolume();
    const staging = stagingPath("fs");
    const stage = { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("ext4", "SINGLE_NODE_WRITER", ["noatime"]) };
    await node.nodeStageVolume(stage);
    expect(findmnt(staging)).toMatchObject({ fstype: "ext4" });
    expect(findmnt(staging)?.options.split(",")).toContain("noatime");
    await node.nodeStageVolume(stage); // idempotent

    const rw = targetPath("rw");
    const ro = targetPath("ro");
    const publish = { volumeId, publishContext, stagingTargetPath: staging, targetPath: rw, volumeCapability: mountCapability() };
    await node.nodePublishVolume(publish);
    await node.nodePublishVolume(publish); // idempotent
    await node.nodePublishVolume({ ...publish, targetPath: ro, readonly: true });
    expect(findmnt(ro)?.options.split(",")).toContain("ro");

    const content = randomBytes(300 * 1024);
    fs.writeFileSync(path.join(rw, "data.bin"), content);
    await runOk("sync", ["-f", rw]);
    expect(fs.readFileSync(path.join(ro, "data.bin")).equals(content)).toBe(true);
    expect(() => fs.writeFileSync(path.join(ro, "nope"), "x")).toThrow(/EROFS/);

    // The same target read-only now that it is writable: ALREADY_EXISTS, and nothing changes.
    expect((await refusal(node.nodePublishVolume({ ...publish, readonly: true }))).code).toBe(status.ALREADY_EXISTS);
    // Unstaging while published would cut the data path: refused.
    expect((await refusal(node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging }))).code).toBe(status.FAILED_PRECONDITION);

    const stats = await node.nodeGetVolumeStats({ volumeId, volumePath: rw });
    const bytes = stats.usage.find((u) => u.unit === "BYTES");
    const inodes = stats.usage.find((u) => u.unit === "INODES");
    expect(bytes?.total).toBeGreaterThan(50 * MiB);
    expect(bytes?.used).toBeGreaterThan(content.length);
    expect(bytes?.available).toBeLessThan(bytes?.total ?? 0);
    expect(inodes?.total).toBeGreaterThan(1000);
    expect(inodes?.used).toBeGreaterThan(10);
    expect(stats.volumeCondition).toEqual({ abnormal: false, message: expect.any(String) as string });

    for (const target of [rw, ro]) {
      await node.nodeUnpublishVolume({ volumeId, targetPath: target });
      await node.nodeUnpublishVolume({ volumeId, targetPath: target }); // idempotent
      expect(fs.existsSync(target)).toBe(false);
    }
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging }); // idempotent
    expect(mountsUnder(root)).toEqual([]);
    expect(loopsUnder(root)).toEqual([]);
    expect(processesUnder(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, "state", "volumes"))).toEqual([]);
  });

  it("keeps the key secret: 0600 key file in 0700 directories, not in the record, the log, or any command line", async () => {
    const { volumeId, publishContext } = await newVolume();
    const key = publishContext[PUBLISH_CONTEXT_KEYS.pskKey]!;
    const staging = stagingPath("secret");
    logLines.length = 0;
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability() });
    try {
      const stateDir = path.join(root, "state");
      const [volumeDir] = fs.readdirSync(path.join(stateDir, "volumes")).map((name) => path.join(stateDir, "volumes", name));
      expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(volumeDir!).mode & 0o777).toBe(0o700);
      expect(fs.statSync(path.join(volumeDir!, "keys.psk")).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(path.join(volumeDir!, "keys.psk"), "utf8")).toContain(key);
      expect(fs.readFileSync(path.join(volumeDir!, "staging.json"), "utf8")).not.toContain(key);
      expect(fs.readFileSync(path.join(volumeDir!, "nbdfuse.log"), "utf8")).not.toContain(key);
      for (const pid of processesUnder(root)) expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(key);
      expect(processesUnder(root).length).toBeGreaterThan(0);
      expect(logLines.length).toBeGreaterThan(0);
      expect(logLines.join("")).not.toContain(key);

      // A malformed key is refused without echoing it.
      const bad = { ...publishContext, [PUBLISH_CONTEXT_KEYS.pskKey]: "not-a-key-but-secret" };
      const refused = await refusal(node.nodeStageVolume({ volumeId: "vg/other", publishContext: bad, stagingTargetPath: stagingPath("bad"), volumeCapability: mountCapability() }));
      expect(refused.code).toBe(status.INVALID_ARGUMENT);
      expect(refused.message).not.toContain("not-a-key-but-secret");
    } finally {
      await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    }
  });

  it("never reformats: data survives a re-stage, and a filesystem or unknown data is refused as another fs type", async () => {
    const { volumeId, publishContext } = await newVolume();
    const staging = stagingPath("keep");
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("") });
    fs.writeFileSync(path.join(staging, "kept.txt"), "still here\n");
    await runOk("sync", ["-f", staging]);
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });

    const asXfs = await refusal(node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("xfs") }));
    expect(asXfs.code).toBe(status.FAILED_PRECONDITION);
    expect(asXfs.message).toMatch(/holds a ext4 filesystem.*never reformats/);
    expect(mountsUnder(root)).toEqual([]); // the refused stage rolled back

    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("ext4") });
    expect(fs.readFileSync(path.join(staging, "kept.txt"), "utf8")).toBe("still here\n");
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });

    // Data that blkid does not recognise is not "blank".
    const raw = await newVolume();
    await san.client.write(raw.volumeId, 4096, randomBytes(4096));
    await san.client.flush();
    const refused = await refusal(node.nodeStageVolume({ volumeId: raw.volumeId, publishContext: raw.publishContext, stagingTargetPath: stagingPath("raw"), volumeCapability: mountCapability() }));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.message).toMatch(/not blank.*never formats/);
    expect(loopsUnder(root)).toEqual([]);
  });

  it("formats and mounts xfs, and refuses a writer mode shared between nodes for a filesystem", async () => {
    const { volumeId, publishContext } = await newVolume(512 * MiB);
    const staging = stagingPath("xfs");
    const shared = await refusal(node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("xfs", "MULTI_NODE_MULTI_WRITER") }));
    expect(shared.code).toBe(status.FAILED_PRECONDITION);
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability("xfs") });
    expect(findmnt(staging)?.fstype).toBe("xfs");
    fs.writeFileSync(path.join(staging, "x"), "xfs");
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("stages a block volume as a device file and publishes it writable and read-only", async () => {
    const { volumeId, publishContext } = await newVolume(16 * MiB);
    const staging = stagingPath("block");
    fs.mkdirSync(staging, { recursive: true });
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: blockCapability() });
    const rw = targetPath("block-rw");
    const ro = targetPath("block-ro");
    const publish = { volumeId, publishContext, stagingTargetPath: staging, targetPath: rw, volumeCapability: blockCapability() };
    await node.nodePublishVolume(publish);
    await node.nodePublishVolume(publish);
    await node.nodePublishVolume({ ...publish, targetPath: ro, readonly: true });
    expect(fs.statSync(rw).isBlockDevice()).toBe(true);

    const data = randomBytes(64 * 1024);
    const fd = fs.openSync(rw, "r+");
    fs.writeSync(fd, data, 0, data.length, 1 * MiB);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const readBack = Buffer.alloc(data.length);
    const roFd = fs.openSync(ro, "r");
    fs.readSync(roFd, readBack, 0, readBack.length, 1 * MiB);
    fs.closeSync(roFd);
    expect(readBack.equals(data)).toBe(true);
    // The read-only publication is a read-only loop device: the kernel refuses writes to it.
    const roWrite = fs.openSync(ro, "r+");
    try {
      expect(() => fs.writeSync(roWrite, data, 0, 4096, 0)).toThrow(/EPERM|EROFS|EACCES/);
    } finally {
      fs.closeSync(roWrite);
    }
    // The data is on the SAN.
    expect((await san.client.read(volumeId, 1 * MiB, data.length)).equals(data)).toBe(true);

    const stats = await node.nodeGetVolumeStats({ volumeId, volumePath: rw });
    expect(stats.usage).toEqual([{ unit: "BYTES", total: 16 * MiB, available: 0, used: 0 }]);

    await node.nodeUnpublishVolume({ volumeId, targetPath: ro });
    await node.nodeUnpublishVolume({ volumeId, targetPath: rw });
    expect(fs.existsSync(rw) || fs.existsSync(ro)).toBe(false);
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    expect(fs.readdirSync(staging)).toEqual([]);
  });

  it("expands: grows the filesystem, reconnecting when the SAN volume grew after staging, refused while published", async () => {
    const { volumeId, publishContext } = await newVolume(64 * MiB);
    const staging = stagingPath("grow");
    const target = targetPath("grow");
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await node.nodePublishVolume({ volumeId, publishContext, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    fs.writeFileSync(path.join(target, "before.txt"), "before the expansion\n");
    await runOk("sync", ["-f", target]);
    const before = (await node.nodeGetVolumeStats({ volumeId, volumePath: target })).usage.find((u) => u.unit === "BYTES")!.total;

    // Not yet grown on the SAN: the node cannot make it larger.
    expect((await refusal(node.nodeExpandVolume({ volumeId, volumePath: target, capacityRange: { requiredBytes: 128 * MiB } }))).code).toBe(status.FAILED_PRECONDITION);

    await san.client.resizeVolume(volumeId, 128 * MiB);
    const online = await refusal(node.nodeExpandVolume({ volumeId, volumePath: target, capacityRange: { requiredBytes: 128 * MiB } }));
    expect(online.code).toBe(status.FAILED_PRECONDITION);
    expect(online.message).toMatch(/published.*nbdfuse reads the size only when it connects/);

    await node.nodeUnpublishVolume({ volumeId, targetPath: target });
    expect(await node.nodeExpandVolume({ volumeId, volumePath: staging, capacityRange: { requiredBytes: 128 * MiB } })).toEqual({ capacityBytes: 128 * MiB });
    const after = (await node.nodeGetVolumeStats({ volumeId, volumePath: staging })).usage.find((u) => u.unit === "BYTES")!.total;
    expect(after).toBeGreaterThan(before + 50 * MiB);
    expect(fs.readFileSync(path.join(staging, "before.txt"), "utf8")).toBe("before the expansion\n");

    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("grows a published xfs online when the SAN volume grew before staging (the csi-sanity order)", async () => {
    const { volumeId, publishContext } = await newVolume(320 * MiB);
    const staging = stagingPath("grow-xfs");
    const target = targetPath("grow-xfs");
    const capability = mountCapability("xfs");
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    fs.writeFileSync(path.join(staging, "before.txt"), "xfs before\n");
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await san.client.resizeVolume(volumeId, 448 * MiB);
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    await node.nodePublishVolume({ volumeId, publishContext, stagingTargetPath: staging, targetPath: target, volumeCapability: capability });
    const before = (await node.nodeGetVolumeStats({ volumeId, volumePath: target })).usage.find((u) => u.unit === "BYTES")!.total;
    expect(await node.nodeExpandVolume({ volumeId, volumePath: target, capacityRange: { requiredBytes: 448 * MiB } })).toEqual({ capacityBytes: 448 * MiB });
    const after = (await node.nodeGetVolumeStats({ volumeId, volumePath: target })).usage.find((u) => u.unit === "BYTES")!.total;
    expect(after).toBeGreaterThan(before + 100 * MiB);
    expect(fs.readFileSync(path.join(target, "before.txt"), "utf8")).toBe("xfs before\n");
    await node.nodeUnpublishVolume({ volumeId, targetPath: target });
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("reports the volume condition abnormal once the NBD link is cut, and still unstages", async () => {
    const { volumeId, publishContext } = await newVolume();
    const staging = stagingPath("cut");
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability() });
    expect((await node.nodeGetVolumeStats({ volumeId, volumePath: staging })).volumeCondition.abnormal).toBe(false);
    await san.client.detach(volumeId, NODE_ID); // revokes the credential and drops the live connection
    const condition = (await node.nodeGetVolumeStats({ volumeId, volumePath: staging })).volumeCondition;
    expect(condition.abnormal).toBe(true);
    expect(condition.message).toMatch(/NBD link is down/);
    await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("freezes and thaws a staged filesystem; thaw is safe to repeat", async () => {
    const { volumeId, publishContext } = await newVolume();
    const staging = stagingPath("freeze");
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability() });
    try {
      await node.freezeVolume(volumeId);
      // Frozen: a second freeze is refused by the kernel (EBUSY).
      expect((await runCommand("fsfreeze", ["-f", staging])).code).not.toBe(0);
      await node.thawVolume(volumeId);
      await node.thawVolume(volumeId);
      fs.writeFileSync(path.join(staging, "after-thaw"), "ok");
      await runOk("sync", ["-f", staging]);
      expect((await refusal(node.freezeVolume("vg/unknown"))).code).toBe(status.NOT_FOUND);
    } finally {
      await node.thawVolume(volumeId);
      await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    }
  });

  it("refuses with the spec's codes: unknown volume, wrong path, not staged, foreign mounts", async () => {
    const { volumeId, publishContext } = await newVolume();
    const staging = stagingPath("refuse");
    const unknown = "vg/never-made";
    expect((await refusal(node.nodeGetVolumeStats({ volumeId: unknown, volumePath: "some/path" }))).code).toBe(status.NOT_FOUND);
    expect((await refusal(node.nodeExpandVolume({ volumeId: unknown, volumePath: "some/path" }))).code).toBe(status.NOT_FOUND);
    expect((await refusal(node.nodePublishVolume({ volumeId, publishContext, stagingTargetPath: staging, targetPath: targetPath("x"), volumeCapability: mountCapability() }))).code).toBe(
      status.FAILED_PRECONDITION,
    );
    await node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: mountCapability() });
    try {
      expect((await refusal(node.nodeGetVolumeStats({ volumeId, volumePath: "some/path" }))).code).toBe(status.NOT_FOUND);
      expect((await refusal(node.nodeGetVolumeStats({ volumeId, volumePath: root }))).code).toBe(status.NOT_FOUND);
      // Staged elsewhere or differently: ALREADY_EXISTS.
      expect((await refusal(node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: stagingPath("other"), volumeCapability: mountCapability() }))).code).toBe(status.ALREADY_EXISTS);
      expect((await refusal(node.nodeStageVolume({ volumeId, publishContext, stagingTargetPath: staging, volumeCapability: blockCapability() }))).code).toBe(status.ALREADY_EXISTS);
      // A mount at the target that is not this volume is left alone.
      const foreign = targetPath("foreign");
      fs.mkdirSync(foreign, { recursive: true });
      await runOk("mount", ["-t", "tmpfs", "tmpfs", foreign]);
      try {
        const refused = await refusal(node.nodeUnpublishVolume({ volumeId, targetPath: foreign }));
        expect(refused.code).toBe(status.NOT_FOUND);
        expect(findmnt(foreign)?.fstype).toBe("tmpfs");
      } finally {
        await runOk("umount", [foreign]);
      }
      // Unpublishing a path that holds nothing succeeds (and removes the empty directory).
      await node.nodeUnpublishVolume({ volumeId, targetPath: foreign });
      expect(fs.existsSync(foreign)).toBe(false);
    } finally {
      await node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    }
  });
});
