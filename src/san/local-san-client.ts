// LocalSanClient: the SanClient over a data directory this process opens itself. It is what the CLI uses with
// --data-dir, and what the SAN service serves over its API; a per-volume KeyedLock serializes mutating calls.
import type { ExportRequest } from "../storage/durable/tier.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../storage/errors.ts";
import { KeyedLock } from "../storage/keyed-lock.ts";
import { parseId } from "../storage/names.ts";
import { San } from "../storage/san.ts";
import type { CreateVolumeRequest, ListOptions, WriteOptions, ZeroOptions } from "../storage/types.ts";
import { AttachmentStore, validateNodeId, type AttachmentEnvironment, type AttachmentRecord } from "./attachments.ts";
import {
  MAX_IO_BYTES,
  type AttachmentCredential,
  type AttachmentFilter,
  type AttachmentInfo,
  type CreateGroupSnapshotRequest,
  type CreateSnapshotRequest,
  type DetachResult,
  type SanClient,
} from "./san-client.ts";

/** Options of LocalSanClient.open. */
export interface LocalSanClientOptions {
  /**
   * The NBD address `attach` reports, or a function giving it once the NBD server is bound
   * (default: unix://DATA_DIR/nbd.sock, where `esan san serve` listens by default).
   */
  nbdAddress?: string | (() => string);
  /** Called after `detach` revoked an identity, so the NBD server drops its live connections (default: nothing). */
  onRevoke?: (pskIdentity: string) => void | Promise<void>;
  /** Clock and randomness for attachment credentials (default: Date.now, crypto.randomBytes). */
  attachmentEnvironment?: Partial<AttachmentEnvironment>;
}

/** Refuses a single read or write larger than the API moves in one call, so both SanClients accept the same calls. */
export function checkIoLength(verb: string, imageId: string, length: number): void {
  if (length > MAX_IO_BYTES) {
    throw new InvalidArgumentError(
      `Cannot ${verb} ${length} bytes of ${imageId} in one call: a call moves at most ${MAX_IO_BYTES} bytes (4 MiB); split the range into pieces.`,
    );
  }
}

/** The SanClient over an engine this process owns. Calls on one volume that change it run one at a time, in order. */
export class LocalSanClient implements SanClient {
  /** The engine; the SAN service also hands it to the NBD exports. */
  readonly san: San;
  /** The attachments; the SAN service's NBD exports look keys up here. */
  readonly attachments: AttachmentStore;
  readonly #locks = new KeyedLock();
  readonly #nbdAddress: () => string;
  readonly #onRevoke: (pskIdentity: string) => void | Promise<void>;
  #closed = false;

  private constructor(san: San, attachments: AttachmentStore, options: LocalSanClientOptions) {
    this.san = san;
    this.attachments = attachments;
    const nbdAddress = options.nbdAddress ?? `unix://${san.dataDir}/nbd.sock`;
    this.#nbdAddress = typeof nbdAddress === "string" ? () => nbdAddress : nbdAddress;
    this.#onRevoke = options.onRevoke ?? (() => undefined);
  }

  /** Opens the SAN in `dataDir` (DataDirInUse if another process holds it) and its attachments. */
  static open(dataDir: string, options: LocalSanClientOptions = {}): LocalSanClient {
    const san = San.open(dataDir);
    try {
      return new LocalSanClient(san, AttachmentStore.open(san.dataDir, options.attachmentEnvironment), options);
    } catch (err) {
      san.close();
      throw err;
    }
  }

  info() {
    return this.#now(() => this.san.info());
  }

  createVolumeGroup(name: string) {
    return this.#locked([`volume-group:${name}`], () => this.san.createVolumeGroup(name));
  }

  listVolumeGroups() {
    return this.#now(() => this.san.listVolumeGroups());
  }

  deleteVolumeGroup(name: string) {
    return this.#locked([`volume-group:${name}`], () => this.san.deleteVolumeGroup(name));
  }

  createVolume(request: CreateVolumeRequest) {
    return this.#locked([`${request.volumeGroup}/${request.name}`], () => this.san.createVolume(request));
  }

  getVolume(id: string) {
    return this.#now(() => this.san.getVolume(id));
  }

  listVolumes(options?: ListOptions & { volumeGroup?: string }) {
    return this.#now(() => this.san.listVolumes(options));
  }

  resizeVolume(id: string, sizeBytes: number) {
    return this.#locked([id], () => this.san.resizeVolume(id, sizeBytes));
  }

  /** Refused while a node holds an attachment: its filesystem would lose its disk under it. */
  deleteVolume(id: string) {
    return this.#locked([id], () => {
      const attached = this.attachments.list({ volumeId: id });
      if (attached.length > 0) {
        const nodes = attached.map((a) => a.nodeId).join(", ");
        throw new FailedPreconditionError(
          `Cannot delete volume ${id}: it is attached to node(s) ${nodes}. Detach it first, e.g. 'esan volume detach ${id} --node ${attached[0]?.nodeId}'.`,
        );
      }
      this.san.deleteVolume(id);
    });
  }

  read(imageId: string, offset: number, length: number) {
    return this.#now(() => {
      checkIoLength("read", imageId, length);
      // readAsync serves a volume that still hydrates from a disk snapshot too (the sync read refuses it).
      return this.san.readAsync(imageId, offset, length);
    });
  }

  write(volumeId: string, offset: number, data: Uint8Array, options?: WriteOptions) {
    return this.#locked([volumeId], () => {
      checkIoLength("write", volumeId, data.byteLength);
      return this.san.writeAsync(volumeId, offset, data, options);
    });
  }

  writeZeroes(volumeId: string, offset: number, length: number, options?: ZeroOptions) {
    return this.#locked([volumeId], () => this.san.writeZeroes(volumeId, offset, length, options));
  }

  trim(volumeId: string, offset: number, length: number, options?: WriteOptions) {
    return this.#locked([volumeId], () => this.san.trim(volumeId, offset, length, options));
  }

  flush() {
    return this.#now(() => this.san.flush());
  }

  allocatedRanges(imageId: string) {
    return this.#now(() => this.san.allocatedRanges(imageId));
  }

  diff(baseId: string, targetId: string) {
    return this.#now(() => this.san.diff(baseId, targetId));
  }

  /** Serialized on the source volume, so the count and rate limits see every creation in order. */
  createSnapshot(request: CreateSnapshotRequest) {
    return this.#locked([request.sourceVolumeId], () => this.san.createSnapshot(request));
  }

  getSnapshot(id: string) {
    return this.#now(() => this.san.getSnapshot(id));
  }

  listSnapshots(options?: ListOptions & { volumeGroup?: string; sourceVolumeId?: string }) {
    return this.#now(() => this.san.listSnapshots(options));
  }

  deleteSnapshot(id: string) {
    return this.#locked([id], () => this.san.deleteSnapshot(id));
  }

  /** Holds the lock of every member volume. */
  createGroupSnapshot(request: CreateGroupSnapshotRequest) {
    const volumeIds = Array.isArray(request.volumeIds) ? request.volumeIds : [];
    return this.#locked([...volumeIds, `${request.volumeGroup}/${request.name}`], () => this.san.createGroupSnapshot(request));
  }

  getGroupSnapshot(id: string) {
    return this.#now(() => this.san.getGroupSnapshot(id));
  }

  listGroupSnapshots(options?: ListOptions & { volumeGroup?: string }) {
    return this.#now(() => this.san.listGroupSnapshots(options));
  }

  deleteGroupSnapshot(id: string) {
    return this.#locked([id], () => this.san.deleteGroupSnapshot(id));
  }

  check() {
    return this.#now(() => this.san.check());
  }

  /** Serialized on the source, whose snapshot rate limit disk snapshot creations share. */
  exportDiskSnapshot(request: ExportRequest) {
    return this.#locked([request.sourceId], () => this.san.exportDiskSnapshot(request));
  }

  waitForDiskSnapshot(name: string) {
    return this.#now(() => this.san.waitForDiskSnapshot(name));
  }

  getDiskSnapshot(name: string) {
    return this.#now(() => this.san.getDiskSnapshot(name));
  }

  listDiskSnapshots(options?: { sourceId?: string }) {
    return this.#now(() => this.san.listDiskSnapshots(options));
  }

  deleteDiskSnapshot(name: string) {
    return this.#locked([`disk-snapshot:${name}`], () => this.san.deleteDiskSnapshot(name));
  }

  waitForHydration(volumeId: string) {
    return this.#now(() => this.san.waitForHydration(volumeId));
  }

  diffDiskSnapshots(baseName: string, targetName: string) {
    return this.#now(() => this.san.diffDiskSnapshots(baseName, targetName));
  }

  attach(volumeId: string, nodeId: string): Promise<AttachmentCredential> {
    return this.#locked([volumeId], () => {
      validateNodeId(nodeId);
      const volume = this.san.getVolume(volumeId);
      return this.#credential(this.attachments.issue(volume.id, volume.uniqueId, nodeId));
    });
  }

  /** Idempotent: detaching what is not attached (even a volume that no longer exists) succeeds with detached=false. */
  async detach(volumeId: string, nodeId: string): Promise<DetachResult> {
    const revoked = await this.#locked([volumeId], () => {
      parseId("volume", volumeId);
      validateNodeId(nodeId);
      return this.attachments.revoke(volumeId, nodeId);
    });
    if (revoked) await this.#onRevoke(revoked.pskIdentity);
    return { detached: revoked !== null };
  }

  listAttachments(filter: AttachmentFilter = {}): Promise<AttachmentInfo[]> {
    return this.#now(() =>
      this.attachments.list(filter).map((a) => ({ volumeId: a.volumeId, nodeId: a.nodeId, pskIdentity: a.pskIdentity, createdAt: iso(a.createdAtMs) })),
    );
  }

  /** Commits and closes the SAN and the attachments; safe to call twice. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    try {
      this.attachments.close();
    } finally {
      this.san.close();
    }
    return Promise.resolve();
  }

  #credential(record: AttachmentRecord): AttachmentCredential {
    return {
      volumeId: record.volumeId,
      nodeId: record.nodeId,
      pskIdentity: record.pskIdentity,
      pskKey: record.pskKey.toString("hex"),
      nbdAddress: this.#nbdAddress(),
      exportName: record.volumeId,
      createdAt: iso(record.createdAtMs),
    };
  }

  /** Runs a synchronous engine call, turning a throw into a rejected promise like every other SanClient call. */
  async #now<T>(fn: () => T | Promise<T>): Promise<T> {
    return fn();
  }

  /** Runs `fn` holding the locks of `keys`, taken in sorted order so two multi-volume calls cannot deadlock. */
  #locked<T>(keys: string[], fn: () => T | Promise<T>): Promise<T> {
    const sorted = [...new Set(keys.map(String))].sort();
    const step = (index: number): Promise<T> =>
      index === sorted.length ? Promise.resolve().then(fn) : this.#locks.run(sorted[index] ?? "", () => step(index + 1));
    return step(0);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
