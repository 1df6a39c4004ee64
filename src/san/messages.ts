// The SAN API's wire messages as the client receives them, and their conversion back into the engine's exact shapes,
// so `--san` and `--data-dir` print the same JSON. (The server sends engine objects as they are: the names match.)
import type {
  ByteRange,
  CheckReport,
  CreationSource,
  DiskSnapshotInfo,
  GroupSnapshotInfo,
  SanInfo,
  SectorSize,
  SnapshotInfo,
  VolumeGroupInfo,
  VolumeInfo,
} from "../storage/types.ts";
import type { AttachmentCredential, AttachmentInfo } from "./san-client.ts";

/** esan.v1.SanInfo as decoded (every field present: the loader fills defaults). */
export interface WireSanInfo {
  capacityBytes: number;
  chunkSizeBytes: number;
  limits?: { maxSnapshotsPerVolume: number; snapshotRateCount: number; snapshotRateWindowMs: number; maxDiskSnapshotsPerSource: number } | null;
  provisionedBytes: number;
  physicalBytes: number;
  freeBytes: number;
  volumeGroupCount: number;
  volumeCount: number;
  snapshotCount: number;
}

/** esan.v1.Volume as decoded. */
export interface WireVolume {
  id: string;
  volumeGroup: string;
  name: string;
  uniqueId: string;
  sizeBytes: number;
  sectorSize: number;
  creationData?: { kind: string; sourceId: string; sourceUniqueId: string } | null;
  createdAt: string;
  allocatedBytes: number;
  usedBytes: number;
  snapshotCount: number;
  hydration?: { state: string; completionPercent: number; diskSnapshot: string };
}

/** esan.v1.Snapshot as decoded; `groupSnapshotId` is absent for a snapshot of no group. */
export interface WireSnapshot {
  id: string;
  volumeGroup: string;
  name: string;
  uniqueId: string;
  sourceId: string;
  sourceUniqueId: string;
  sizeBytes: number;
  sectorSize: number;
  createdAt: string;
  usedBytes: number;
  changedBytes: number;
  groupSnapshotId?: string;
}

/** esan.v1.ListVolumesResponse and friends. */
export interface WirePage<T> {
  entries: T[];
  nextToken: string;
}

/** The engine's SanInfo, key for key. */
export function sanInfoFromWire(m: WireSanInfo): SanInfo {
  return {
    capacityBytes: m.capacityBytes,
    chunkSizeBytes: m.chunkSizeBytes,
    limits: {
      maxSnapshotsPerVolume: m.limits?.maxSnapshotsPerVolume ?? 0,
      snapshotRateCount: m.limits?.snapshotRateCount ?? 0,
      snapshotRateWindowMs: m.limits?.snapshotRateWindowMs ?? 0,
      maxDiskSnapshotsPerSource: m.limits?.maxDiskSnapshotsPerSource ?? 0,
    },
    provisionedBytes: m.provisionedBytes,
    physicalBytes: m.physicalBytes,
    freeBytes: m.freeBytes,
    volumeGroupCount: m.volumeGroupCount,
    volumeCount: m.volumeCount,
    snapshotCount: m.snapshotCount,
  };
}

/** The engine's VolumeGroupInfo. */
export function volumeGroupFromWire(m: VolumeGroupInfo): VolumeGroupInfo {
  return { id: m.id, name: m.name, createdAt: m.createdAt };
}

function creationSourceFromWire(m: WireVolume["creationData"]): CreationSource {
  if (!m || (m.kind !== "snapshot" && m.kind !== "volume" && m.kind !== "diskSnapshot")) return { kind: "none" };
  return { kind: m.kind, sourceId: m.sourceId, sourceUniqueId: m.sourceUniqueId };
}

/** The engine's VolumeInfo: `creationData` back to its union, an absent hydration back to null. */
export function volumeFromWire(m: WireVolume): VolumeInfo {
  return {
    id: m.id,
    volumeGroup: m.volumeGroup,
    name: m.name,
    uniqueId: m.uniqueId,
    sizeBytes: m.sizeBytes,
    sectorSize: m.sectorSize as SectorSize,
    creationData: creationSourceFromWire(m.creationData),
    createdAt: m.createdAt,
    allocatedBytes: m.allocatedBytes,
    usedBytes: m.usedBytes,
    snapshotCount: m.snapshotCount,
    hydration: m.hydration
      ? { state: m.hydration.state === "complete" ? "complete" : "hydrating", completionPercent: m.hydration.completionPercent, diskSnapshot: m.hydration.diskSnapshot }
      : null,
  };
}

/** The engine's SnapshotInfo: an absent group back to null. */
export function snapshotFromWire(m: WireSnapshot): SnapshotInfo {
  return {
    id: m.id,
    volumeGroup: m.volumeGroup,
    name: m.name,
    uniqueId: m.uniqueId,
    sourceId: m.sourceId,
    sourceUniqueId: m.sourceUniqueId,
    sizeBytes: m.sizeBytes,
    sectorSize: m.sectorSize as SectorSize,
    createdAt: m.createdAt,
    usedBytes: m.usedBytes,
    changedBytes: m.changedBytes,
    groupSnapshotId: m.groupSnapshotId ?? null,
    readyToUse: true,
  };
}

/** The engine's GroupSnapshotInfo. */
export function groupSnapshotFromWire(m: GroupSnapshotInfo): GroupSnapshotInfo {
  return { id: m.id, volumeGroup: m.volumeGroup, name: m.name, createdAt: m.createdAt, snapshotIds: [...m.snapshotIds], sourceIds: [...m.sourceIds] };
}

/** Plain ByteRange objects. */
export function rangesFromWire(ranges: ByteRange[]): ByteRange[] {
  return ranges.map((r) => ({ offset: r.offset, length: r.length }));
}

/** esan.v1.DiskSnapshot as decoded; `previousMemberId` is absent for a family's full member. */
export interface WireDiskSnapshot extends Omit<DiskSnapshotInfo, "previousMemberId" | "sectorSize"> {
  previousMemberId?: string;
  sectorSize: number;
}

/** The engine's DiskSnapshotInfo: an absent previous member back to null. */
export function diskSnapshotFromWire(m: WireDiskSnapshot): DiskSnapshotInfo {
  return {
    name: m.name,
    memberId: m.memberId,
    sourceResourceId: m.sourceResourceId,
    sourceUniqueId: m.sourceUniqueId,
    exportedFrom: m.exportedFrom,
    incremental: m.incremental,
    previousMemberId: m.previousMemberId ?? null,
    sizeBytes: m.sizeBytes,
    usedBytes: m.usedBytes,
    sectorSize: m.sectorSize as SectorSize,
    completionPercent: m.completionPercent,
    createdAt: m.createdAt,
    store: m.store,
  };
}

/** The engine's CheckReport. */
export function checkReportFromWire(m: CheckReport): CheckReport {
  return { ok: m.ok, faults: [...m.faults], pages: m.pages, extents: m.extents, freeExtents: m.freeExtents };
}

/** An AttachmentCredential, key for key. */
export function credentialFromWire(m: AttachmentCredential): AttachmentCredential {
  return {
    volumeId: m.volumeId,
    nodeId: m.nodeId,
    pskIdentity: m.pskIdentity,
    pskKey: m.pskKey,
    nbdAddress: m.nbdAddress,
    exportName: m.exportName,
    createdAt: m.createdAt,
  };
}

/** An AttachmentInfo, key for key. */
export function attachmentInfoFromWire(m: AttachmentInfo): AttachmentInfo {
  return { volumeId: m.volumeId, nodeId: m.nodeId, pskIdentity: m.pskIdentity, createdAt: m.createdAt };
}
