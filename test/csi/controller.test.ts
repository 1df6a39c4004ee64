// The controller side end to end over real sockets (esan san serve + esan csi --mode controller): provisioning,
// idempotency, publish credentials, snapshots of both tiers, limits, pagination, group snapshots, changed-block
// metadata, Probe, metrics and the log.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PUBLISH_CONTEXT_KEYS } from "../../src/csi/publish-context.ts";
import { run, runJson } from "../san/support.ts";
import { BLOCK_RWO, createVolume, killAll, MOUNT_RWO, MiB, startStack, type CsiStack } from "./support.ts";

const KiB = 1024;

let stack: CsiStack;
/** Runs an esan CLI command against the test's SAN service. */
const esan = <T = Record<string, unknown>>(...args: string[]) => runJson<T>([...args, "--san", stack.san.api]);

beforeAll(async () => {
  // A rate cap of 4 snapshots per hour per volume, so the limit test is quick; every other test stays below it.
  stack = await startStack({
    createArgs: ["--capacity", "1TiB", "--snapshot-rate", "4/1h"],
    csiArgs: ["--node-id", "node-1", "--node-id", "node-2", "--metrics-address", "127.0.0.1:0", "--log-level", "debug"],
  });
});

afterAll(async () => {
  await stack?.stop();
  await killAll();
});

type Volume = { volumeId: string; capacityBytes: number; contentSource: Record<string, unknown> | null; volumeContext: Record<string, string> };
type Snapshot = { snapshotId: string; sourceVolumeId: string; readyToUse: boolean; sizeBytes: number; groupSnapshotId: string };

describe("volumes", () => {
  it("creates idempotently by name, rounds to chunks, and refuses the same name with another size", async () => {
    const request = { name: "Idem_Volume", capacityRange: { requiredBytes: 100 * KiB }, volumeCapabilities: [MOUNT_RWO], parameters: { fsType: "xfs" } };
    const first = await stack.client.call<{ volume: Volume }>("Controller", "CreateVolume", request);
    const again = await stack.client.call<{ volume: Volume }>("Controller", "CreateVolume", request);
    expect(again.volume).toEqual(first.volume);
    expect(first.volume.capacityBytes).toBe(128 * KiB);
    expect(first.volume.volumeId).toMatch(/^csi\/idem-volume-[0-9a-f]{10}$/);
    expect(first.volume.volumeContext).toEqual({ "esan.csi.dev/sector-size": "512", "esan.csi.dev/fs-type": "xfs" });
    const other = await stack.client.failure("Controller", "CreateVolume", { ...request, capacityRange: { requiredBytes: 10 * MiB } });
    expect(other.code).toBe(status.ALREADY_EXISTS);
    expect(other.details).toMatch(/already exists, but its size is 131072 bytes/);
  });

  it("clones from a snapshot and from a volume, with the source's data", async () => {
    const source = await createVolume(stack.client, "clone-source", 4 * MiB);
    const data = crypto.randomBytes(64 * KiB);
    await esan("volume", "write", source, "--offset", String(MiB), "--file", writeTemp("clone.bin", data));
    const snapshot = await stack.client.call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", { name: "clone-snap", sourceVolumeId: source });
    const fromSnapshot = await stack.client.call<{ volume: Volume }>("Controller", "CreateVolume", {
      name: "from-snapshot",
      volumeCapabilities: [BLOCK_RWO],
      capacityRange: { requiredBytes: MiB },
      volumeContentSource: { snapshot: { snapshotId: snapshot.snapshot.snapshotId } },
    });
    // Asked for 1 MiB, but a clone is at least its source's size.
    expect(fromSnapshot.volume.capacityBytes).toBe(4 * MiB);
    expect(fromSnapshot.volume.contentSource).toMatchObject({ snapshot: { snapshotId: snapshot.snapshot.snapshotId } });
    const fromVolume = await stack.client.call<{ volume: Volume }>("Controller", "CreateVolume", {
      name: "from-volume",
      volumeCapabilities: [BLOCK_RWO],
      volumeContentSource: { volume: { volumeId: source } },
    });
    expect(fromVolume.volume.contentSource).toMatchObject({ volume: { volumeId: source } });
    for (const id of [fromSnapshot.volume.volumeId, fromVolume.volume.volumeId]) {
      const read = await run(["volume", "read", id, "--offset", String(MiB), "--length", String(64 * KiB), "--san", stack.san.api]);
      expect(read.stdout.equals(data)).toBe(true);
    }
  });

  it("publishes with a per-attachment NBD credential, refuses a second node for a single-node volume, and unpublishes", async () => {
    const id = await createVolume(stack.client, "published", 4 * MiB);
    const publish = { volumeId: id, nodeId: "node-1", volumeCapability: MOUNT_RWO };
    const first = await stack.client.call<{ publishContext: Record<string, string> }>("Controller", "ControllerPublishVolume", publish);
    const context = first.publishContext;
    expect(context[PUBLISH_CONTEXT_KEYS.exportName]).toBe(id);
    expect(context[PUBLISH_CONTEXT_KEYS.pskKey]).toMatch(/^[0-9a-f]{64}$/);
    expect(context[PUBLISH_CONTEXT_KEYS.pskIdentity]).toMatch(/^esan-node-1-/);
    expect(context[PUBLISH_CONTEXT_KEYS.nbdAddress]).toMatch(/^unix:\/\//);
    expect(context[PUBLISH_CONTEXT_KEYS.nbdUri]).toMatch(/^nbds\+unix:\/\/esan-node-1-[^@]+@\/csi%2Fpublished\?socket=\//);
    // A retry gets the same credential.
    const again = await stack.client.call<{ publishContext: Record<string, string> }>("Controller", "ControllerPublishVolume", publish);
    expect(again.publishContext).toEqual(context);
    const elsewhere = await stack.client.failure("Controller", "ControllerPublishVolume", { ...publish, nodeId: "node-2" });
    expect(elsewhere.code).toBe(status.FAILED_PRECONDITION);
    expect(elsewhere.details).toMatch(/is published to node node-1, and SINGLE_NODE_WRITER allows one node at a time/);
    const got = await stack.client.call<{ status: { publishedNodeIds: string[]; volumeCondition: { abnormal: boolean } } }>("Controller", "ControllerGetVolume", { volumeId: id });
    expect(got.status).toMatchObject({ publishedNodeIds: ["node-1"], volumeCondition: { abnormal: false } });
    // Deleting a published volume is refused; unpublish (twice: idempotent) revokes the credential.
    expect((await stack.client.failure("Controller", "DeleteVolume", { volumeId: id })).code).toBe(status.FAILED_PRECONDITION);
    await stack.client.call("Controller", "ControllerUnpublishVolume", { volumeId: id, nodeId: "node-1" });
    await stack.client.call("Controller", "ControllerUnpublishVolume", { volumeId: id, nodeId: "node-1" });
    expect(await esan<unknown[]>("volume", "attachments", "--volume", id)).toEqual([]);
    await stack.client.call("Controller", "DeleteVolume", { volumeId: id });
    await stack.client.call("Controller", "DeleteVolume", { volumeId: id });
    expect((await stack.client.failure("Controller", "ControllerGetVolume", { volumeId: id })).code).toBe(status.NOT_FOUND);
  });

  it("expands to whole chunks and says when the node must grow the filesystem", async () => {
    const id = await createVolume(stack.client, "grows", 4 * MiB);
    const mount = await stack.client.call<{ capacityBytes: number; nodeExpansionRequired: boolean }>("Controller", "ControllerExpandVolume", {
      volumeId: id,
      capacityRange: { requiredBytes: 8 * MiB + 1 },
      volumeCapability: MOUNT_RWO,
    });
    expect(mount).toEqual({ capacityBytes: 8 * MiB + 64 * KiB, nodeExpansionRequired: true });
    const block = await stack.client.call("Controller", "ControllerExpandVolume", { volumeId: id, capacityRange: { requiredBytes: 8 * MiB }, volumeCapability: BLOCK_RWO });
    expect(block).toEqual({ capacityBytes: 8 * MiB + 64 * KiB, nodeExpansionRequired: false });
  });

  it("reports capacity as what may still be provisioned", async () => {
    const info = await esan<{ capacityBytes: number; provisionedBytes: number }>("san", "show");
    const capacity = await stack.client.call<{ availableCapacity: number; minimumVolumeSize: { value: number } }>("Controller", "GetCapacity", {});
    expect(capacity.availableCapacity).toBe(info.capacityBytes - info.provisionedBytes);
    expect(capacity.minimumVolumeSize.value).toBe(64 * KiB);
  });

  it("pages ListVolumes with published node ids", async () => {
    const seen: string[] = [];
    let token = "";
    do {
      const page = await stack.client.call<{ entries: { volume: Volume }[]; nextToken: string }>("Controller", "ListVolumes", { maxEntries: 2, startingToken: token });
      expect(page.entries.length).toBeLessThanOrEqual(2);
      seen.push(...page.entries.map((e) => e.volume.volumeId));
      token = page.nextToken;
    } while (token !== "");
    const all = await stack.client.call<{ entries: { volume: Volume }[] }>("Controller", "ListVolumes", {});
    expect(seen).toEqual(all.entries.map((e) => e.volume.volumeId));
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe("snapshots", () => {
  it("makes a durable snapshot that becomes ready when its export completes, restorable and idempotent", async () => {
    const source = await createVolume(stack.client, "durable-source", 8 * MiB);
    const data = crypto.randomBytes(2 * MiB);
    await esan("volume", "write", source, "--file", writeTemp("durable.bin", data));
    const request = { name: "nightly", sourceVolumeId: source, parameters: { tier: "durable" } };
    const first = await stack.client.call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", request);
    expect(first.snapshot.snapshotId).toBe("disk-snapshot:nightly");
    expect(first.snapshot.sourceVolumeId).toBe(source);
    // The sidecar polls by calling CreateSnapshot again; ready_to_use follows the export's completionPercent.
    let snapshot = first.snapshot;
    while (!snapshot.readyToUse) {
      const disk = await esan<{ completionPercent: number }>("disk-snapshot", "show", "nightly");
      snapshot = (await stack.client.call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", request)).snapshot;
      if (!snapshot.readyToUse) expect(disk.completionPercent).toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await esan<{ completionPercent: number }>("disk-snapshot", "show", "nightly")).completionPercent).toBe(100);
    // Same name, instant tier: refused, never a second snapshot.
    const clash = await stack.client.failure("Controller", "CreateSnapshot", { name: "nightly", sourceVolumeId: source });
    expect(clash.code).toBe(status.ALREADY_EXISTS);
    const restored = await stack.client.call<{ volume: Volume }>("Controller", "CreateVolume", {
      name: "restored",
      volumeCapabilities: [BLOCK_RWO],
      volumeContentSource: { snapshot: { snapshotId: "disk-snapshot:nightly" } },
    });
    expect(restored.volume.contentSource).toMatchObject({ snapshot: { snapshotId: "disk-snapshot:nightly" } });
    const read = await run(["volume", "read", restored.volume.volumeId, "--length", String(2 * MiB), "--san", stack.san.api]);
    expect(read.stdout.equals(data)).toBe(true);
    const got = await stack.client.call<{ snapshot: Snapshot }>("Controller", "GetSnapshot", { snapshotId: "disk-snapshot:nightly" });
    expect(got.snapshot.readyToUse).toBe(true);
  });

  it("surfaces the rate limit as RESOURCE_EXHAUSTED with the engine's code and sentence, and an idempotent retry still succeeds", async () => {
    const id = await createVolume(stack.client, "rate-limited", MiB);
    for (let i = 0; i < 4; i++) await stack.client.call("Controller", "CreateSnapshot", { name: `rate-${i}`, sourceVolumeId: id });
    const refused = await stack.client.failure("Controller", "CreateSnapshot", { name: "rate-4", sourceVolumeId: id });
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/^SnapshotOperationRateExceeded: Cannot create snapshot of csi\/rate-limited: the volume allows 4 snapshot creations per .* Retry then\.$/);
    await expect(stack.client.call("Controller", "CreateSnapshot", { name: "rate-0", sourceVolumeId: id })).resolves.toBeDefined();
    const listed = await stack.client.call<{ entries: { snapshot: Snapshot }[] }>("Controller", "ListSnapshots", { sourceVolumeId: id });
    expect(listed.entries.map((e) => e.snapshot.snapshotId)).toEqual(["csi/rate-0", "csi/rate-1", "csi/rate-2", "csi/rate-3"]);
  });

  it("pages ListSnapshots across both tiers and filters by id and by source", async () => {
    const all = await stack.client.call<{ entries: { snapshot: Snapshot }[] }>("Controller", "ListSnapshots", {});
    const ids = all.entries.map((e) => e.snapshot.snapshotId);
    expect(ids).toContain("disk-snapshot:nightly");
    const seen: string[] = [];
    let token = "";
    do {
      const page = await stack.client.call<{ entries: { snapshot: Snapshot }[]; nextToken: string }>("Controller", "ListSnapshots", { maxEntries: 3, startingToken: token });
      seen.push(...page.entries.map((e) => e.snapshot.snapshotId));
      token = page.nextToken;
    } while (token !== "");
    expect(seen).toEqual(ids);
    const one = await stack.client.call<{ entries: { snapshot: Snapshot }[] }>("Controller", "ListSnapshots", { snapshotId: "csi/rate-2" });
    expect(one.entries.map((e) => e.snapshot.snapshotId)).toEqual(["csi/rate-2"]);
    const none = await stack.client.call<{ entries: unknown[] }>("Controller", "ListSnapshots", { snapshotId: "csi/never-made" });
    expect(none.entries).toEqual([]);
  });

  it("takes a group snapshot in one commit, keeps its members together, and deletes them with the group", async () => {
    const a = await createVolume(stack.client, "group-a", MiB);
    const b = await createVolume(stack.client, "group-b", MiB);
    const request = { name: "consistent", sourceVolumeIds: [b, a] };
    const created = await stack.client.call<{ groupSnapshot: { groupSnapshotId: string; snapshots: Snapshot[]; readyToUse: boolean } }>("GroupController", "CreateVolumeGroupSnapshot", request);
    const group = created.groupSnapshot;
    expect(group.readyToUse).toBe(true);
    expect(group.snapshots.map((s) => s.sourceVolumeId).sort()).toEqual([a, b]);
    expect(group.snapshots.every((s) => s.groupSnapshotId === group.groupSnapshotId)).toBe(true);
    const retried = await stack.client.call<{ groupSnapshot: unknown }>("GroupController", "CreateVolumeGroupSnapshot", { ...request, sourceVolumeIds: [a, b] });
    expect(retried.groupSnapshot).toEqual(group);
    const member = group.snapshots[0]!.snapshotId;
    const alone = await stack.client.failure("Controller", "DeleteSnapshot", { snapshotId: member });
    expect(alone.code).toBe(status.INVALID_ARGUMENT);
    expect(alone.details).toMatch(/is a member of group snapshot .* Delete the group snapshot instead\.$/);
    const mismatch = await stack.client.failure("GroupController", "GetVolumeGroupSnapshot", { groupSnapshotId: group.groupSnapshotId, snapshotIds: [member] });
    expect(mismatch.code).toBe(status.INVALID_ARGUMENT);
    await stack.client.call("GroupController", "DeleteVolumeGroupSnapshot", { groupSnapshotId: group.groupSnapshotId });
    expect((await stack.client.failure("Controller", "GetSnapshot", { snapshotId: member })).code).toBe(status.NOT_FOUND);
  });

  it("streams the allocated ranges and the delta between two snapshots, equal to what was written between them", async () => {
    const id = await createVolume(stack.client, "cbt", 16 * MiB);
    await esan("volume", "write", id, "--offset", "0", "--file", writeTemp("cbt0.bin", crypto.randomBytes(64 * KiB)));
    const base = (await stack.client.call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", { name: "cbt-base", sourceVolumeId: id })).snapshot.snapshotId;
    await esan("volume", "write", id, "--offset", String(MiB), "--file", writeTemp("cbt1.bin", crypto.randomBytes(128 * KiB)));
    await esan("volume", "write", id, "--offset", String(10 * MiB), "--file", writeTemp("cbt2.bin", crypto.randomBytes(64 * KiB)));
    const target = (await stack.client.call<{ snapshot: Snapshot }>("Controller", "CreateSnapshot", { name: "cbt-target", sourceVolumeId: id })).snapshot.snapshotId;
    type Message = { blockMetadataType: string; volumeCapacityBytes: number; blockMetadata: { byteOffset: number; sizeBytes: number }[] };
    const delta = await stack.client.stream<Message>("SnapshotMetadata", "GetMetadataDelta", { baseSnapshotId: base, targetSnapshotId: target });
    expect(delta[0]).toMatchObject({ blockMetadataType: "VARIABLE_LENGTH", volumeCapacityBytes: 16 * MiB });
    expect(delta.flatMap((m) => m.blockMetadata)).toEqual([
      { byteOffset: MiB, sizeBytes: 128 * KiB },
      { byteOffset: 10 * MiB, sizeBytes: 64 * KiB },
    ]);
    const fromOffset = await stack.client.stream<Message>("SnapshotMetadata", "GetMetadataDelta", { baseSnapshotId: base, targetSnapshotId: target, startingOffset: MiB + 64 * KiB, maxResults: 1 });
    expect(fromOffset.map((m) => m.blockMetadata)).toEqual([[{ byteOffset: MiB + 64 * KiB, sizeBytes: 64 * KiB }], [{ byteOffset: 10 * MiB, sizeBytes: 64 * KiB }]]);
    const allocated = await stack.client.stream<Message>("SnapshotMetadata", "GetMetadataAllocated", { snapshotId: target });
    expect(allocated.flatMap((m) => m.blockMetadata)).toEqual([
      { byteOffset: 0, sizeBytes: 64 * KiB },
      { byteOffset: MiB, sizeBytes: 128 * KiB },
      { byteOffset: 10 * MiB, sizeBytes: 64 * KiB },
    ]);
  });
});

describe("operations", () => {
  it("serves Prometheus metrics: call durations by method and code, counts and SAN capacity", async () => {
    const response = await fetch(`http://${stack.csi.ready.metrics}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/esan_csi_operations_seconds_count\{method="CreateVolume",grpc_code="OK"\} \d+/);
    expect(text).toMatch(/esan_csi_operations_seconds_count\{method="CreateVolume",grpc_code="ALREADY_EXISTS"\} 1/);
    const info = await esan<{ capacityBytes: number; volumeCount: number; snapshotCount: number }>("san", "show");
    expect(text).toContain(`esan_san_capacity_bytes ${info.capacityBytes}`);
    expect(text).toContain(`esan_csi_volumes ${info.volumeCount}`);
    expect(text).toContain(`esan_csi_snapshots ${info.snapshotCount}`);
    expect(text).toMatch(/esan_csi_disk_snapshots 1/);
  });

  it("never writes secrets or PSK keys to its log", async () => {
    const id = await createVolume(stack.client, "secretive", MiB, { secrets: { password: "hunter2-do-not-log" } });
    const published = await stack.client.call<{ publishContext: Record<string, string> }>("Controller", "ControllerPublishVolume", {
      volumeId: id,
      nodeId: "node-2",
      volumeCapability: { mount: { fsType: "ext4", mountFlags: ["password=hunter2-do-not-log"] }, accessMode: { mode: "SINGLE_NODE_WRITER" } },
      secrets: { token: "hunter2-do-not-log" },
    });
    const key = published.publishContext[PUBLISH_CONTEXT_KEYS.pskKey]!;
    await stack.client.call("Controller", "ControllerUnpublishVolume", { volumeId: id, nodeId: "node-2" });
    const log = stack.csi.log();
    expect(log).toContain(id);
    expect(log).toContain("[redacted]");
    expect(log).not.toContain("hunter2-do-not-log");
    expect(log).not.toContain(key);
  });

  it("Probe fails with UNAVAILABLE while the SAN is unreachable", async () => {
    await expect(stack.client.call("Identity", "Probe", {})).resolves.toEqual({ ready: { value: true } });
    const info = await stack.client.call<{ name: string }>("Identity", "GetPluginInfo", {});
    expect(info.name).toBe("esan.csi.dev");
    await stack.san.stop();
    const probe = await stack.client.failure("Identity", "Probe", {});
    expect(probe.code).toBe(status.UNAVAILABLE);
    expect(probe.details).toMatch(/^Cannot reach the SAN API at unix:\/\/.*Check that 'esan san serve' is running there\.$/);
  });
});

/** Writes `data` to a file in the stack's temp directory and returns its path. */
function writeTemp(name: string, data: Buffer): string {
  const file = path.join(stack.root, name);
  fs.writeFileSync(file, data);
  return file;
}
