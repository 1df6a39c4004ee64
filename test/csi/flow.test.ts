// A kubelet-like flow over the real sockets of `esan csi --mode all` in front of `esan san serve`, as root: the test
// plays the provisioner, the attacher, kubelet and the snapshotter, in the order they call.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRoot, missingNodePrerequisites, requirePrerequisites, sweep } from "../support/csi-node-env.ts";
import { BLOCK_RWO, killAll, MOUNT_RWO, MiB, startStack, type CsiStack } from "./support.ts";

const KiB = 1024;
const NODE = "flow-node";
const missing = await missingNodePrerequisites();

type Snapshot = { snapshotId: string; sourceVolumeId: string };
type Message = { blockMetadata: { byteOffset: number; sizeBytes: number }[] };
type Mounted = { volumeId: string; target: string; staging: string };

describe("kubelet-like flow", () => {
  let stack: CsiStack;
  let kubelet: string;

  beforeAll(async () => {
    requirePrerequisites(missing, "The kubelet-like flow tests");
    stack = await startStack({ mode: "all", csiArgs: ["--node-id", NODE] });
    kubelet = makeRoot("esan-csi-flow");
  });

  afterAll(async () => {
    // Whatever a failed test left mounted or attached goes first, so the directories can be removed.
    if (kubelet) await sweep(kubelet);
    if (stack) await sweep(stack.root);
    await stack?.stop();
    await killAll();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  const call = <T = Record<string, unknown>>(service: "Controller" | "Node" | "GroupController", method: string, request: Record<string, unknown>) =>
    stack.client.call<T>(service, method, request);

  /** CreateVolume, then attach: what happens between a PVC and a running pod. */
  async function provisionAndMount(name: string, capability: Record<string, unknown>, source?: Record<string, unknown>): Promise<Mounted> {
    const created = await call<{ volume: { volumeId: string } }>("Controller", "CreateVolume", {
      name,
      capacityRange: { requiredBytes: 64 * MiB },
      volumeCapabilities: [capability],
      ...(source ? { volumeContentSource: source } : {}),
    });
    return attach(name, created.volume.volumeId, capability);
  }

  /**
   * ControllerPublish (the attacher), NodeStage and NodePublish (kubelet). With `expandToBytes`, kubelet's offline
   * expansion order: NodeExpandVolume on the staging path between stage and publish.
   */
  async function attach(name: string, volumeId: string, capability: Record<string, unknown>, expandToBytes?: number): Promise<Mounted> {
    const published = await call<{ publishContext: Record<string, string> }>("Controller", "ControllerPublishVolume", { volumeId, nodeId: NODE, volumeCapability: capability });
    const staging = path.join(kubelet, "staging", name);
    const target = path.join(kubelet, "pods", name, capability.block ? "dev" : "mount");
    fs.mkdirSync(staging, { recursive: true });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    await call("Node", "NodeStageVolume", { volumeId, publishContext: published.publishContext, stagingTargetPath: staging, volumeCapability: capability });
    if (expandToBytes !== undefined) {
      await call("Node", "NodeExpandVolume", { volumeId, volumePath: staging, stagingTargetPath: staging, capacityRange: { requiredBytes: expandToBytes }, volumeCapability: capability });
    }
    await call("Node", "NodePublishVolume", { volumeId, publishContext: published.publishContext, stagingTargetPath: staging, targetPath: target, volumeCapability: capability });
    return { volumeId, target, staging };
  }

  /** NodeUnpublish, NodeUnstage, ControllerUnpublish: the pod is gone. */
  async function unmount(volume: Mounted): Promise<void> {
    await call("Node", "NodeUnpublishVolume", { volumeId: volume.volumeId, targetPath: volume.target });
    await call("Node", "NodeUnstageVolume", { volumeId: volume.volumeId, stagingTargetPath: volume.staging });
    await call("Controller", "ControllerUnpublishVolume", { volumeId: volume.volumeId, nodeId: NODE });
  }

  it("writes files, snapshots, restores them into a new volume, and grows the filesystem when expanded", async () => {
    const app = await provisionAndMount("app-data", MOUNT_RWO);
    const content = crypto.randomBytes(300 * KiB);
    fs.writeFileSync(path.join(app.target, "orders.db"), content);
    fs.mkdirSync(path.join(app.target, "logs"));
    fs.writeFileSync(path.join(app.target, "logs", "today.log"), "first line\n");
    // A crash-consistent snapshot of a mounted filesystem holds what was synced before it.
    syncFilesystem(app.target);
    const snapshot = await call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", { name: "app-data-monday", sourceVolumeId: app.volumeId });

    const restored = await provisionAndMount("app-data-restored", MOUNT_RWO, { snapshot: { snapshotId: snapshot.snapshot.snapshotId } });
    expect(fs.readFileSync(path.join(restored.target, "orders.db")).equals(content)).toBe(true);
    expect(fs.readFileSync(path.join(restored.target, "logs", "today.log"), "utf8")).toBe("first line\n");

    // Expansion as the resizer and kubelet do it, offline: the controller grows the volume at once; the node sees the
    // new size when the volume is next staged, and NodeExpandVolume grows the filesystem before the pod mounts it.
    const before = fs.statfsSync(app.target);
    const expanded = await call<{ capacityBytes: number; nodeExpansionRequired: boolean }>("Controller", "ControllerExpandVolume", {
      volumeId: app.volumeId,
      capacityRange: { requiredBytes: 256 * MiB },
      volumeCapability: MOUNT_RWO,
    });
    expect(expanded).toEqual({ capacityBytes: 256 * MiB, nodeExpansionRequired: true });
    await unmount(app);
    const again = await attach("app-data", app.volumeId, MOUNT_RWO, 256 * MiB);
    const after = fs.statfsSync(again.target);
    expect(after.blocks * after.bsize).toBeGreaterThan(3 * before.blocks * before.bsize);
    expect(fs.readFileSync(path.join(again.target, "orders.db")).equals(content)).toBe(true);
    fs.writeFileSync(path.join(again.target, "after-expand"), "still writable");

    await unmount(restored);
    await unmount(again);
  });

  it("takes a group snapshot of two volumes and reports the delta between two snapshots as the ranges written", async () => {
    const first = await provisionAndMount("raw-a", BLOCK_RWO);
    const second = await provisionAndMount("raw-b", BLOCK_RWO);
    const group = await call<{ groupSnapshot: { groupSnapshotId: string; snapshots: Snapshot[] } }>("GroupController", "CreateVolumeGroupSnapshot", {
      name: "pair",
      sourceVolumeIds: [first.volumeId, second.volumeId],
    });
    expect(group.groupSnapshot.snapshots.map((s) => s.sourceVolumeId).sort()).toEqual([first.volumeId, second.volumeId].sort());

    // Between two snapshots, write two ranges to the raw device; the delta is exactly those chunks (64 KiB each).
    const base = group.groupSnapshot.snapshots.find((s) => s.sourceVolumeId === first.volumeId)!.snapshotId;
    const device = fs.openSync(first.target, "r+");
    fs.writeSync(device, crypto.randomBytes(100 * KiB), 0, 100 * KiB, 4 * MiB);
    fs.writeSync(device, crypto.randomBytes(4 * KiB), 0, 4 * KiB, 40 * MiB + 8 * KiB);
    fs.fsyncSync(device);
    fs.closeSync(device);
    const target = await call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", { name: "raw-a-later", sourceVolumeId: first.volumeId });
    const delta = await stack.client.stream<Message>("SnapshotMetadata", "GetMetadataDelta", { baseSnapshotId: base, targetSnapshotId: target.snapshot.snapshotId });
    expect(delta.flatMap((m) => m.blockMetadata)).toEqual([
      { byteOffset: 4 * MiB, sizeBytes: 128 * KiB },
      { byteOffset: 40 * MiB, sizeBytes: 64 * KiB },
    ]);

    await unmount(first);
    await unmount(second);
    await call("GroupController", "DeleteVolumeGroupSnapshot", { groupSnapshotId: group.groupSnapshot.groupSnapshotId });
  });

  it("freezes the members' mounted filesystems around a group snapshot with fsfreeze, and thaws them", async () => {
    const first = await provisionAndMount("frozen-a", MOUNT_RWO);
    const second = await provisionAndMount("frozen-b", MOUNT_RWO);
    fs.writeFileSync(path.join(first.target, "a.txt"), "a before");
    fs.writeFileSync(path.join(second.target, "b.txt"), "b before");
    // No sync: the freeze itself flushes each filesystem, so the snapshot holds both files.
    const group = await call<{ groupSnapshot: { groupSnapshotId: string; snapshots: Snapshot[] } }>("GroupController", "CreateVolumeGroupSnapshot", {
      name: "frozen-pair",
      sourceVolumeIds: [first.volumeId, second.volumeId],
      parameters: { fsfreeze: "true" },
    });
    // Thawed: both filesystems take writes again.
    fs.writeFileSync(path.join(first.target, "a.txt"), "a after");
    fs.writeFileSync(path.join(second.target, "b.txt"), "b after");
    const memberOfSecond = group.groupSnapshot.snapshots.find((s) => s.sourceVolumeId === second.volumeId)!;
    const restored = await provisionAndMount("frozen-b-restored", MOUNT_RWO, { snapshot: { snapshotId: memberOfSecond.snapshotId } });
    expect(fs.readFileSync(path.join(restored.target, "b.txt"), "utf8")).toBe("b before");
    await unmount(restored);
    await unmount(first);
    await unmount(second);
  });
});

/** `sync -f`: flushes the whole filesystem holding `dir`, data and metadata, to its device. */
function syncFilesystem(dir: string): void {
  execFileSync("sync", ["-f", dir]);
}
