// SanClient: the one interface through which the CLI, the CSI controller and the operator use a SAN, opened directly
// (LocalSanClient) or over the SAN API (GrpcSanClient). Both throw the same EsanError subclasses with the same sentences.
import type { ExportRequest } from "../storage/durable/tier.ts";
import type {
  ByteRange,
  CheckReport,
  CreateVolumeRequest,
  DiffResult,
  DiskSnapshotInfo,
  GroupSnapshotInfo,
  ListOptions,
  ListPage,
  SanInfo,
  SnapshotInfo,
  VolumeGroupInfo,
  VolumeInfo,
  WriteOptions,
  ZeroOptions,
} from "../storage/types.ts";

/** Most bytes one read or write call moves, on both implementations; callers split larger ranges (4 MiB). */
export const MAX_IO_BYTES = 4 * 1024 * 1024;

/** The credential that lets one node open one volume on the NBD endpoint. `pskKey` is secret: never log it. */
export interface AttachmentCredential {
  volumeId: string;
  nodeId: string;
  /** TLS-PSK identity, `esan-<node>-<random hex>`. */
  pskIdentity: string;
  /** The 32-byte pre-shared key as 64 lower-case hex digits. */
  pskKey: string;
  /** Where the node connects: `tcp://HOST:PORT` or `unix:///PATH`. */
  nbdAddress: string;
  /** The NBD export name to ask for: the volume id. */
  exportName: string;
  createdAt: string;
}

/** An attachment as listed: everything but the key. */
export interface AttachmentInfo {
  volumeId: string;
  nodeId: string;
  pskIdentity: string;
  createdAt: string;
}

/** Result of `detach`: false when the volume was not attached to that node (detach is idempotent). */
export interface DetachResult {
  detached: boolean;
}

/** Filters of `listAttachments`; unset fields match everything. */
export interface AttachmentFilter {
  volumeId?: string;
  nodeId?: string;
}

/** Request of `createSnapshot`. */
export interface CreateSnapshotRequest {
  volumeGroup: string;
  name: string;
  sourceVolumeId: string;
}

/** Request of `createGroupSnapshot`. */
export interface CreateGroupSnapshotRequest {
  volumeGroup: string;
  name: string;
  volumeIds: string[];
}

/**
 * The async mirror of the engine's public API (src/storage/san.ts), plus attachments. Mutating calls on one volume
 * are serialized; calls on different volumes run in parallel. Every refusal is an EsanError with a sentence.
 */
export interface SanClient {
  /** Capacity, usage and limits. */
  info(): Promise<SanInfo>;
  /** Creates a volume group; creating one that exists returns it. */
  createVolumeGroup(name: string): Promise<VolumeGroupInfo>;
  listVolumeGroups(): Promise<VolumeGroupInfo[]>;
  /** Deletes an empty volume group. */
  deleteVolumeGroup(name: string): Promise<void>;
  /** Creates an empty volume or an instant clone; idempotent by name. */
  createVolume(request: CreateVolumeRequest): Promise<VolumeInfo>;
  getVolume(id: string): Promise<VolumeInfo>;
  listVolumes(options?: ListOptions & { volumeGroup?: string }): Promise<ListPage<VolumeInfo>>;
  /** Grows a volume; the current size is a no-op, a smaller one is refused. */
  resizeVolume(id: string, sizeBytes: number): Promise<VolumeInfo>;
  /** Deletes a volume; refused while it is attached to a node. */
  deleteVolume(id: string): Promise<void>;
  /** Reads at most MAX_IO_BYTES of a volume or snapshot. */
  read(imageId: string, offset: number, length: number): Promise<Buffer>;
  /** Writes at most MAX_IO_BYTES to a volume; durable at return with `fua`, otherwise at the next flush. */
  write(volumeId: string, offset: number, data: Uint8Array, options?: WriteOptions): Promise<void>;
  writeZeroes(volumeId: string, offset: number, length: number, options?: ZeroOptions): Promise<void>;
  trim(volumeId: string, offset: number, length: number, options?: WriteOptions): Promise<void>;
  /** Makes every write acknowledged so far durable. */
  flush(): Promise<void>;
  /** Mapped ranges of an image, chunk-granular and coalesced. */
  allocatedRanges(imageId: string): Promise<ByteRange[]>;
  /** Chunk ranges where `targetId` may differ from `baseId`. */
  diff(baseId: string, targetId: string): Promise<DiffResult>;
  /** Takes an instant snapshot; idempotent by name; limits apply to new snapshots only. */
  createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo>;
  getSnapshot(id: string): Promise<SnapshotInfo>;
  listSnapshots(options?: ListOptions & { volumeGroup?: string; sourceVolumeId?: string }): Promise<ListPage<SnapshotInfo>>;
  deleteSnapshot(id: string): Promise<void>;
  /** Snapshots several volumes of one volume group in one commit. */
  createGroupSnapshot(request: CreateGroupSnapshotRequest): Promise<GroupSnapshotInfo>;
  getGroupSnapshot(id: string): Promise<GroupSnapshotInfo>;
  listGroupSnapshots(options?: ListOptions & { volumeGroup?: string }): Promise<ListPage<GroupSnapshotInfo>>;
  /** Deletes a group snapshot and its members. */
  deleteGroupSnapshot(id: string): Promise<void>;
  /** Commits, then runs the full consistency check. */
  check(): Promise<CheckReport>;
  /** Starts exporting a snapshot (or a volume's current state) to the durable tier; returns at once. */
  exportDiskSnapshot(request: ExportRequest): Promise<DiskSnapshotInfo>;
  /** Resolves when the export of `name` completed. */
  waitForDiskSnapshot(name: string): Promise<DiskSnapshotInfo>;
  getDiskSnapshot(name: string): Promise<DiskSnapshotInfo>;
  listDiskSnapshots(options?: { sourceId?: string }): Promise<DiskSnapshotInfo[]>;
  /** Deletes a disk snapshot, folding its delta into the next member of its family. */
  deleteDiskSnapshot(name: string): Promise<void>;
  /** Resolves when a volume restored from a disk snapshot has hydrated (at once for any other volume). */
  waitForHydration(volumeId: string): Promise<void>;
  /** Chunk ranges where two members of a family differ. */
  diffDiskSnapshots(baseName: string, targetName: string): Promise<DiffResult>;
  /** Issues (or returns the existing) NBD credential for one node and one volume. */
  attach(volumeId: string, nodeId: string): Promise<AttachmentCredential>;
  /** Revokes a node's credential for a volume and drops its live NBD connections. */
  detach(volumeId: string, nodeId: string): Promise<DetachResult>;
  listAttachments(filter?: AttachmentFilter): Promise<AttachmentInfo[]>;
  /** Releases the client: closes the SAN (committing) or the channel. Safe to call twice. */
  close(): Promise<void>;
}
