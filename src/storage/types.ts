// The engine's public data model: what the SAN, its volume groups, volumes and snapshots look like to callers.
import type { DurableStore } from "./durable/store.ts";

/** Per-SAN limits. Defaults follow Azure Elastic SAN: 200 snapshots per volume, 7 creations per 5 minutes. */
export interface SanLimits {
  /** Instant snapshots one volume may hold at once (default 200). */
  maxSnapshotsPerVolume: number;
  /** Snapshot creations allowed per volume within `snapshotRateWindowMs` (default 7). */
  snapshotRateCount: number;
  /** Length of the rolling rate window in milliseconds (default 300000, five minutes). */
  snapshotRateWindowMs: number;
  /** Disk snapshots (durable tier) one source may have (default 500); their creations share the rate cap above. */
  maxDiskSnapshotsPerSource: number;
}

export const DEFAULT_LIMITS: SanLimits = {
  maxSnapshotsPerVolume: 200,
  snapshotRateCount: 7,
  snapshotRateWindowMs: 5 * 60 * 1000,
  maxDiskSnapshotsPerSource: 500,
};

/** Chunk size used when `san create` is not given one: 64 KiB. */
export const DEFAULT_CHUNK_SIZE_BYTES = 64 * 1024;

/** Options of `San.create`. */
export interface SanCreateOptions {
  /** Physical and provisioned capacity of the SAN in bytes. */
  capacityBytes: number;
  /** Copy-on-write and diff unit; a power of two from 4 KiB to 1 MiB (default 64 KiB). */
  chunkSizeBytes?: number;
  /** Limit overrides; unset fields take DEFAULT_LIMITS. */
  limits?: Partial<SanLimits>;
}

/** What the engine needs from its surroundings; tests inject a fake clock and deterministic ids. */
export interface SanEnvironment {
  /** Milliseconds since the epoch (default Date.now). */
  now: () => number;
  /** A fresh unique id for a volume (default crypto.randomUUID). */
  newUniqueId: () => string;
  /**
   * Opens the durable store at a location (default: a DirectoryStore in that directory). The seam for other
   * stores, such as an S3-compatible one.
   */
  openDurableStore?: (location: string) => DurableStore;
}

/** `san show`: capacity, usage and limits. */
export interface SanInfo {
  capacityBytes: number;
  chunkSizeBytes: number;
  limits: SanLimits;
  /** Sum of the sizes of all volumes. */
  provisionedBytes: number;
  /** Bytes of chunks held by any image (volumes, snapshots, data of deleted volumes still referenced). */
  physicalBytes: number;
  /** capacityBytes − physicalBytes. */
  freeBytes: number;
  volumeGroupCount: number;
  volumeCount: number;
  snapshotCount: number;
}

export interface VolumeGroupInfo {
  id: string;
  name: string;
  createdAt: string;
}

/** Where a volume's initial content came from. The durable tier adds `diskSnapshot` later. */
export type CreationSource =
  | { kind: "none" }
  | { kind: "snapshot"; sourceId: string; sourceUniqueId: string }
  | { kind: "volume"; sourceId: string; sourceUniqueId: string }
  /** Restored from the durable tier: `sourceId` is the disk snapshot's name, `sourceUniqueId` its member id. */
  | { kind: "diskSnapshot"; sourceId: string; sourceUniqueId: string };

export type SectorSize = 512 | 4096;

export interface VolumeInfo {
  /** `volumeGroup/name`. */
  id: string;
  volumeGroup: string;
  name: string;
  /** Changes whenever a volume of the same name is created anew. */
  uniqueId: string;
  sizeBytes: number;
  sectorSize: SectorSize;
  creationData: CreationSource;
  createdAt: string;
  /** Bytes of chunks mapped in this volume. */
  allocatedBytes: number;
  /** Bytes of chunks held by this volume and no other image: what deleting it would free. */
  usedBytes: number;
  snapshotCount: number;
  /** For a volume restored from a disk snapshot: how far its background copy got; null otherwise. */
  hydration: { state: "hydrating" | "complete"; completionPercent: number; diskSnapshot: string } | null;
}

export interface SnapshotInfo {
  id: string;
  volumeGroup: string;
  name: string;
  /** Identifies this snapshot across delete and re-create of the same name. */
  uniqueId: string;
  /** Id of the volume it was taken from (the volume may since have been deleted). */
  sourceId: string;
  sourceUniqueId: string;
  sizeBytes: number;
  sectorSize: SectorSize;
  createdAt: string;
  /** Bytes held by this snapshot and no other image: what deleting it would free. */
  usedBytes: number;
  /**
   * Bytes that differ from the previous surviving snapshot of the same source (the incremental size Azure bills);
   * 0 for the first snapshot of a source, which shares everything with its volume.
   */
  changedBytes: number;
  /** Set when the snapshot was taken as a member of a group snapshot. */
  groupSnapshotId: string | null;
  /** Instant snapshots are ready at once. */
  readyToUse: true;
}

export interface GroupSnapshotInfo {
  id: string;
  volumeGroup: string;
  name: string;
  createdAt: string;
  /** Member snapshot ids, in the order the volumes were given. */
  snapshotIds: string[];
  /** Source volume ids, in the same order. */
  sourceIds: string[];
}

/** A byte range. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** `snapshot diff`: the chunks whose content may differ between two images, coalesced. */
export interface DiffResult {
  chunkSizeBytes: number;
  changedBytes: number;
  ranges: ByteRange[];
}

/** One page of a paginated listing; `nextToken` is empty when there is no more. */
export interface ListPage<T> {
  entries: T[];
  nextToken: string;
}

/** Paging of list calls: at most `maxEntries` (0 = all), continuing after `startingToken`. */
export interface ListOptions {
  maxEntries?: number;
  startingToken?: string;
}

/** Per-write durability flags. */
export interface WriteOptions {
  /** Force unit access: the write is durable when the call returns. */
  fua?: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** Keep the range allocated (write real zeroes) instead of unmapping whole chunks. */
  noHole?: boolean;
}

/** A disk snapshot: a member of a family in the durable tier. */
export interface DiskSnapshotInfo {
  name: string;
  /** Identifies this member across SANs (a copy keeps it). */
  memberId: string;
  /** The volume the family belongs to (`VG/NAME`), which may since have been deleted. */
  sourceResourceId: string;
  /** That volume's uniqueId: the family key together with sourceResourceId. */
  sourceUniqueId: string;
  /** The snapshot or volume this member was exported from. */
  exportedFrom: string;
  /** False for the family's full member; true when it holds only the delta from `previousMemberId`. */
  incremental: boolean;
  previousMemberId: string | null;
  sizeBytes: number;
  /** Bytes this member stores: the allocated size for a full member, the changed chunks for an incremental one. */
  usedBytes: number;
  sectorSize: SectorSize;
  /** 100 once the export completed; only then can the disk snapshot be used. */
  completionPercent: number;
  createdAt: string;
  /** Where its objects live. */
  store: string;
}

/** Result of the consistency check. */
export interface CheckReport {
  ok: boolean;
  faults: string[];
  pages: number;
  extents: number;
  freeExtents: number;
}

/** Request of `createVolume`. */
export interface CreateVolumeRequest {
  volumeGroup: string;
  name: string;
  sizeBytes: number;
  /** 512 (default) or 4096; a clone inherits its source's. */
  sectorSize?: SectorSize;
  /** Clone instantly from a snapshot or a volume; the new volume may be larger than the source. */
  source?: { kind: "snapshot" | "volume" | "diskSnapshot"; id: string };
}
