// Request validation of the controller side, table-driven over the real sockets (esan san serve + esan csi): every bad
// request gets the CSI spec's code and a sentence, and changes nothing.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CsiServiceName } from "../../src/csi/proto.ts";
import { BLOCK_RWO, createVolume, killAll, MOUNT_RWO, MiB, startStack, type CsiStack } from "./support.ts";

let stack: CsiStack;
let volumeId: string;
let snapshotId: string;

beforeAll(async () => {
  stack = await startStack({ csiArgs: ["--node-id", "node-1"] });
  volumeId = await createVolume(stack.client, "existing", 4 * MiB);
  const snapshot = await stack.client.call<{ snapshot: { snapshotId: string } }>("Controller", "CreateSnapshot", { name: "existing-snap", sourceVolumeId: volumeId });
  snapshotId = snapshot.snapshot.snapshotId;
});

afterAll(async () => {
  await stack?.stop();
  await killAll();
});

/** One row: what is sent, and the code and sentence that must come back. */
type Row = [description: string, service: CsiServiceName, method: string, request: () => Record<string, unknown>, code: status, sentence: RegExp];

const create = (extra: Record<string, unknown>) => () => ({ name: "bad-input-volume", volumeCapabilities: [MOUNT_RWO], ...extra });
const publish = (extra: Record<string, unknown>) => () => ({ volumeId, nodeId: "node-1", volumeCapability: MOUNT_RWO, ...extra });

const rows: Row[] = [
  // Missing ids and names.
  ["CreateVolume without a name", "Controller", "CreateVolume", create({ name: "" }), status.INVALID_ARGUMENT, /^The request field name is required\.$/],
  ["DeleteVolume without a volume id", "Controller", "DeleteVolume", () => ({}), status.INVALID_ARGUMENT, /volume_id is required/],
  ["ControllerPublishVolume without a volume id", "Controller", "ControllerPublishVolume", publish({ volumeId: "" }), status.INVALID_ARGUMENT, /volume_id is required/],
  ["ControllerPublishVolume without a node id", "Controller", "ControllerPublishVolume", publish({ nodeId: "" }), status.INVALID_ARGUMENT, /node_id is required/],
  ["ControllerUnpublishVolume without a volume id", "Controller", "ControllerUnpublishVolume", () => ({ nodeId: "node-1" }), status.INVALID_ARGUMENT, /volume_id is required/],
  ["ValidateVolumeCapabilities without a volume id", "Controller", "ValidateVolumeCapabilities", () => ({ volumeCapabilities: [MOUNT_RWO] }), status.INVALID_ARGUMENT, /volume_id is required/],
  ["ControllerExpandVolume without a volume id", "Controller", "ControllerExpandVolume", () => ({ capacityRange: { requiredBytes: 8 * MiB } }), status.INVALID_ARGUMENT, /volume_id is required/],
  ["ControllerGetVolume without a volume id", "Controller", "ControllerGetVolume", () => ({}), status.INVALID_ARGUMENT, /volume_id is required/],
  ["CreateSnapshot without a name", "Controller", "CreateSnapshot", () => ({ sourceVolumeId: volumeId }), status.INVALID_ARGUMENT, /name is required/],
  ["CreateSnapshot without a source", "Controller", "CreateSnapshot", () => ({ name: "s" }), status.INVALID_ARGUMENT, /source_volume_id is required/],
  ["DeleteSnapshot without an id", "Controller", "DeleteSnapshot", () => ({}), status.INVALID_ARGUMENT, /snapshot_id is required/],
  ["GetSnapshot without an id", "Controller", "GetSnapshot", () => ({}), status.INVALID_ARGUMENT, /snapshot_id is required/],
  ["CreateVolumeGroupSnapshot without a name", "GroupController", "CreateVolumeGroupSnapshot", () => ({ sourceVolumeIds: [volumeId] }), status.INVALID_ARGUMENT, /name is required/],
  ["CreateVolumeGroupSnapshot without volumes", "GroupController", "CreateVolumeGroupSnapshot", () => ({ name: "g" }), status.INVALID_ARGUMENT, /source_volume_ids is required/],
  ["GetVolumeGroupSnapshot without an id", "GroupController", "GetVolumeGroupSnapshot", () => ({}), status.INVALID_ARGUMENT, /group_snapshot_id is required/],
  ["GetMetadataDelta without a base", "SnapshotMetadata", "GetMetadataDelta", () => ({ targetSnapshotId: snapshotId }), status.INVALID_ARGUMENT, /base_snapshot_id is required/],

  // Bad capabilities.
  ["CreateVolume without capabilities", "Controller", "CreateVolume", create({ volumeCapabilities: [] }), status.INVALID_ARGUMENT, /volume_capabilities is required/],
  ["a capability without an access mode", "Controller", "CreateVolume", create({ volumeCapabilities: [{ mount: {} }] }), status.INVALID_ARGUMENT, /no access mode/],
  ["a capability without an access type", "Controller", "CreateVolume", create({ volumeCapabilities: [{ accessMode: { mode: "SINGLE_NODE_WRITER" } }] }), status.INVALID_ARGUMENT, /no access type: set block or mount/],
  ["a multi-node writer", "Controller", "CreateVolume", create({ volumeCapabilities: [{ ...BLOCK_RWO, accessMode: { mode: "MULTI_NODE_MULTI_WRITER" } }] }), status.INVALID_ARGUMENT, /MULTI_NODE_MULTI_WRITER is not supported/],
  ["an unknown filesystem", "Controller", "CreateVolume", create({ volumeCapabilities: [{ ...MOUNT_RWO, mount: { fsType: "btrfs" } }] }), status.INVALID_ARGUMENT, /filesystem type 'btrfs' is not supported/],
  ["ControllerPublishVolume without a capability", "Controller", "ControllerPublishVolume", publish({ volumeCapability: null }), status.INVALID_ARGUMENT, /volume_capability is required/],
  ["ValidateVolumeCapabilities without capabilities", "Controller", "ValidateVolumeCapabilities", () => ({ volumeId }), status.INVALID_ARGUMENT, /volume_capabilities is required/],

  // Bad parameters and ranges.
  ["an unknown StorageClass parameter", "Controller", "CreateVolume", create({ parameters: { colour: "blue" } }), status.INVALID_ARGUMENT, /parameter 'colour' is not known to esan/],
  ["a sector size of 1024", "Controller", "CreateVolume", create({ parameters: { sectorSize: "1024" } }), status.INVALID_ARGUMENT, /sectorSize must be 512 or 4096; got '1024'/],
  ["a volume group that is no name", "Controller", "CreateVolume", create({ parameters: { volumeGroup: "Bad_Group" } }), status.INVALID_ARGUMENT, /volumeGroup is not usable/],
  ["an fsType parameter esan cannot format", "Controller", "CreateVolume", create({ parameters: { fsType: "ntfs" } }), status.INVALID_ARGUMENT, /fsType must be ext4 or xfs/],
  ["required bytes above the limit", "Controller", "CreateVolume", create({ capacityRange: { requiredBytes: 2 * MiB, limitBytes: MiB } }), status.OUT_OF_RANGE, /must not exceed limit_bytes/],
  ["a range no sector fits", "Controller", "CreateVolume", create({ capacityRange: { requiredBytes: 100, limitBytes: 200 } }), status.OUT_OF_RANGE, /No volume size fits/],
  ["a snapshot tier that does not exist", "Controller", "CreateSnapshot", () => ({ name: "s", sourceVolumeId: volumeId, parameters: { tier: "cold" } }), status.INVALID_ARGUMENT, /tier must be 'instant' or 'durable'/],
  ["fsfreeze that is not a boolean", "GroupController", "CreateVolumeGroupSnapshot", () => ({ name: "g", sourceVolumeIds: [volumeId], parameters: { fsfreeze: "yes" } }), status.INVALID_ARGUMENT, /fsfreeze must be 'true' or 'false'/],
  ["fsfreeze with no way to reach the nodes", "GroupController", "CreateVolumeGroupSnapshot", () => ({ name: "g", sourceVolumeIds: [volumeId], parameters: { fsfreeze: "true" } }), status.FAILED_PRECONDITION, /cannot reach the nodes' filesystems/],
  ["a negative max_entries", "Controller", "ListVolumes", () => ({ maxEntries: -1 }), status.INVALID_ARGUMENT, /max_entries must not be negative/],
  ["a volume starting_token esan did not issue", "Controller", "ListVolumes", () => ({ startingToken: "garbage" }), status.ABORTED, /was not issued by esan/],
  ["a snapshot starting_token esan did not issue", "Controller", "ListSnapshots", () => ({ startingToken: "garbage" }), status.ABORTED, /was not issued by esan/],
  ["a negative starting_offset", "SnapshotMetadata", "GetMetadataAllocated", () => ({ snapshotId, startingOffset: -1 }), status.OUT_OF_RANGE, /starting_offset must be a byte offset/],
  ["a starting_offset past the end", "SnapshotMetadata", "GetMetadataAllocated", () => ({ snapshotId, startingOffset: 8 * MiB }), status.OUT_OF_RANGE, /past the end of snapshot/],
  ["shrinking a volume", "Controller", "ControllerExpandVolume", () => ({ volumeId, capacityRange: { requiredBytes: MiB, limitBytes: 2 * MiB } }), status.OUT_OF_RANGE, /esan volumes only grow/],
  ["expanding without a capacity range", "Controller", "ControllerExpandVolume", () => ({ volumeId }), status.INVALID_ARGUMENT, /capacity_range is required/],

  // Oversize names.
  ["a 129-byte volume name", "Controller", "CreateVolume", create({ name: "v".repeat(129) }), status.INVALID_ARGUMENT, /is 129 bytes long; CSI allows at most 128/],
  ["a 129-byte snapshot name", "Controller", "CreateSnapshot", () => ({ name: "s".repeat(129), sourceVolumeId: volumeId }), status.INVALID_ARGUMENT, /is 129 bytes long/],
  ["a 129-byte node id", "Controller", "ControllerPublishVolume", publish({ nodeId: "n".repeat(129) }), status.INVALID_ARGUMENT, /node_id is 129 bytes long/],
  ["a name with a control character", "Controller", "CreateVolume", create({ name: "bad\u0007name" }), status.INVALID_ARGUMENT, /control character/],

  // Unknown ids.
  ["publishing a volume that does not exist", "Controller", "ControllerPublishVolume", publish({ volumeId: "csi/no-such-volume" }), status.NOT_FOUND, /No volume csi\/no-such-volume exists\./],
  ["publishing an id esan never issues", "Controller", "ControllerPublishVolume", publish({ volumeId: "fake-vol-id" }), status.NOT_FOUND, /No volume fake-vol-id exists\./],
  ["publishing to a node that does not exist", "Controller", "ControllerPublishVolume", publish({ nodeId: "no-such-node" }), status.NOT_FOUND, /No node no-such-node is known/],
  ["validating a volume that does not exist", "Controller", "ValidateVolumeCapabilities", () => ({ volumeId: "csi/nope", volumeCapabilities: [MOUNT_RWO] }), status.NOT_FOUND, /No volume csi\/nope exists/],
  ["expanding a volume that does not exist", "Controller", "ControllerExpandVolume", () => ({ volumeId: "csi/nope", capacityRange: { requiredBytes: MiB } }), status.NOT_FOUND, /No volume csi\/nope exists/],
  ["getting a volume that does not exist", "Controller", "ControllerGetVolume", () => ({ volumeId: "csi/nope" }), status.NOT_FOUND, /No volume csi\/nope exists/],
  ["cloning a snapshot that does not exist", "Controller", "CreateVolume", create({ volumeContentSource: { snapshot: { snapshotId: "csi/nope" } } }), status.NOT_FOUND, /snapshot csi\/nope/],
  ["restoring a disk snapshot that does not exist", "Controller", "CreateVolume", create({ volumeContentSource: { snapshot: { snapshotId: "disk-snapshot:nope" } } }), status.NOT_FOUND, /nope/],
  ["cloning a volume that does not exist", "Controller", "CreateVolume", create({ volumeContentSource: { volume: { volumeId: "csi/nope" } } }), status.NOT_FOUND, /No volume csi\/nope exists/],
  ["snapshotting a volume that does not exist", "Controller", "CreateSnapshot", () => ({ name: "s", sourceVolumeId: "csi/nope" }), status.NOT_FOUND, /csi\/nope/],
  ["getting a snapshot that does not exist", "Controller", "GetSnapshot", () => ({ snapshotId: "csi/nope" }), status.NOT_FOUND, /No snapshot csi\/nope exists/],
  ["getting a group snapshot that does not exist", "GroupController", "GetVolumeGroupSnapshot", () => ({ groupSnapshotId: "fake-vol-id" }), status.NOT_FOUND, /No group snapshot fake-vol-id exists/],
  ["allocation of a snapshot that does not exist", "SnapshotMetadata", "GetMetadataAllocated", () => ({ snapshotId: "csi/nope" }), status.NOT_FOUND, /csi\/nope/],
  ["a method esan does not offer", "Controller", "ControllerModifyVolume", () => ({ volumeId }), status.UNIMPLEMENTED, /does not implement Controller\.ControllerModifyVolume/],
];

describe("controller request validation", () => {
  it.each(rows)("%s", async (_description, service, method, request, code, sentence) => {
    const failure =
      service === "SnapshotMetadata"
        ? await stack.client.stream(service, method, request()).then(
            () => {
              throw new Error(`${method} succeeded`);
            },
            (err: { code: number; details: string }) => err,
          )
        : await stack.client.failure(service, method, request());
    expect({ code: status[failure.code], details: failure.details }).toMatchObject({ code: status[code], details: expect.stringMatching(sentence) as string });
    // A sentence: a capital letter first, a full stop last, and no stack frame anywhere.
    expect(failure.details).toMatch(/^[A-Z`'a-z].*[.]$/s);
    expect(failure.details).not.toMatch(/\n\s+at /);
  });

  it("changed nothing: the SAN holds only what the test made on purpose", async () => {
    const volumes = await stack.client.call<{ entries: { volume: { volumeId: string } }[] }>("Controller", "ListVolumes", {});
    expect(volumes.entries.map((e) => e.volume.volumeId)).toEqual([volumeId]);
    const snapshots = await stack.client.call<{ entries: { snapshot: { snapshotId: string } }[] }>("Controller", "ListSnapshots", {});
    expect(snapshots.entries.map((e) => e.snapshot.snapshotId)).toEqual([snapshotId]);
    const volume = await stack.client.call<{ volume: { capacityBytes: number }; status: { publishedNodeIds: string[] } }>("Controller", "ControllerGetVolume", { volumeId });
    expect(volume.volume.capacityBytes).toBe(4 * MiB);
    expect(volume.status.publishedNodeIds).toEqual([]);
  });
});
