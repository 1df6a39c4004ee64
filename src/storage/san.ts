// The SAN engine: one data directory with volume groups, thin volumes, instant snapshots and clones, limits and usage.
import crypto from "node:crypto";
import { type ImageKind, type ImageRecord, type LoadedCatalog, insertImage, loadCatalog, paginate } from "./catalog.ts";
import { forEachMappedInWindow } from "./allocation-window.ts";
import { checkConsistency } from "./check.ts";
import { countExclusiveChunks, depthFor, diffChunks, forEachMapped, growTo, lookup, release, share } from "./chunk-map.ts";
import { DataDir } from "./data-dir.ts";
import type { DurableHost, PinInfo } from "./durable/records.ts";
import { DirectoryStore } from "./durable/store.ts";
import { DurableTier, type ExportRequest } from "./durable/tier.ts";
import {
  AlreadyExistsError,
  CapacityExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ReadOnlyError,
} from "./errors.ts";
import { extentsNeeded, readImage, readImageInto, readImageIntoAsync, writeImage, type ZeroMode, zeroImage } from "./image-io.ts";
import { joinId, parseId, validateName } from "./names.ts";
import {
  checkRange,
  coalesceChunks,
  describeImage,
  describeSnapshot,
  sameSource,
  validateChunkSize,
  validateLimits,
  validateSize,
  volumeGroupInfo,
} from "./san-support.ts";
import { SnapshotOps } from "./snapshot-ops.ts";
import {
  type ByteRange,
  type CheckReport,
  type CreateVolumeRequest,
  type CreationSource,
  DEFAULT_CHUNK_SIZE_BYTES,
  type DiffResult,
  type DiskSnapshotInfo,
  type GroupSnapshotInfo,
  type ListOptions,
  type ListPage,
  type SanCreateOptions,
  type SanEnvironment,
  type SanInfo,
  type SanLimits,
  type SnapshotInfo,
  type VolumeGroupInfo,
  type VolumeInfo,
  type WriteOptions,
  type ZeroOptions,
} from "./types.ts";

/** Extent ids are 32-bit, so a SAN holds at most this many chunks. */
const MAX_EXTENTS = 0xffff_ffff;


/**
 * One SAN in one data directory, owned by this process. Every method is synchronous, so each runs as one atomic
 * step of the event loop; async callers that need longer critical sections use KeyedLock around them.
 * Durability and the commit protocol live in DataDir; this class is the catalog and its rules.
 */
export class San {
  readonly dataDir: string;
  readonly chunkSizeBytes: number;
  readonly capacityBytes: number;
  readonly limits: SanLimits;
  readonly #env: SanEnvironment;
  readonly #dir: DataDir;
  readonly #catalog: LoadedCatalog;
  readonly #snapshots: SnapshotOps;
  readonly #durable: DurableTier;

  private constructor(dir: DataDir, env: Partial<SanEnvironment> | undefined) {
    this.#dir = dir;
    this.#env = { ...env, now: env?.now ?? Date.now, newUniqueId: env?.newUniqueId ?? (() => crypto.randomUUID()) };
    this.dataDir = dir.path;
    ({ chunkSizeBytes: this.chunkSizeBytes, capacityBytes: this.capacityBytes, limits: this.limits } = dir.settings);
    try {
      this.#catalog = loadCatalog(dir.db, this.#env.now() - this.limits.snapshotRateWindowMs);
    } catch (err) {
      dir.close();
      throw err;
    }
    this.#snapshots = new SnapshotOps(this.#catalog, this.limits, () => this.#env.now());
    this.#durable = new DurableTier(this.#durableHost());
    this.#durable.resume();
  }

  /** Creates a SAN in `dataDir` (made if missing); refuses a directory that already holds one. */
  static create(dataDir: string, options: SanCreateOptions, env?: Partial<SanEnvironment>): San {
    const chunkSizeBytes = options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES;
    validateChunkSize(chunkSizeBytes);
    const capacityBytes = options.capacityBytes;
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < chunkSizeBytes || capacityBytes % chunkSizeBytes !== 0) {
      throw new InvalidArgumentError(
        `The SAN capacity ${String(capacityBytes)} bytes is not allowed: give a positive multiple of the chunk size (${chunkSizeBytes} bytes).`,
      );
    }
    if (capacityBytes / chunkSizeBytes > MAX_EXTENTS) {
      throw new InvalidArgumentError(
        `A SAN with ${chunkSizeBytes}-byte chunks holds at most ${MAX_EXTENTS} chunks; lower the capacity or raise the chunk size.`,
      );
    }
    const limits = validateLimits(options.limits ?? {});
    const dir = DataDir.initialize(dataDir, { capacityBytes, chunkSizeBytes, limits, createdAtMs: (env?.now ?? Date.now)() });
    return new San(dir, env);
  }

  /** Opens the SAN in `dataDir`, returning to its last commit if its previous owner crashed. */
  static open(dataDir: string, env?: Partial<SanEnvironment>): San {
    return new San(DataDir.open(dataDir), env);
  }

  /** Commits everything and gives up the data directory. */
  close(): void {
    this.#durable.close();
    this.#dir.close();
  }

  /** Capacity, usage and limits. */
  info(): SanInfo {
    this.#usable();
    let provisionedBytes = 0;
    let volumeCount = 0;
    let snapshotCount = 0;
    for (const image of this.#catalog.images.values()) {
      if (image.kind === "volume") {
        provisionedBytes += image.sizeBytes;
        volumeCount++;
      } else if (image.kind === "snapshot") {
        snapshotCount++;
      }
    }
    const physicalBytes = this.#dir.store.liveExtents * this.chunkSizeBytes;
    return {
      capacityBytes: this.capacityBytes,
      chunkSizeBytes: this.chunkSizeBytes,
      limits: { ...this.limits },
      provisionedBytes,
      physicalBytes,
      freeBytes: this.capacityBytes - physicalBytes,
      volumeGroupCount: this.#catalog.volumeGroups.size,
      volumeCount,
      snapshotCount,
    };
  }

  /** Creates a volume group; creating one that exists returns it. */
  createVolumeGroup(name: string): VolumeGroupInfo {
    this.#usable();
    validateName("volume group", name);
    const existing = this.#catalog.volumeGroups.get(name);
    if (existing) return volumeGroupInfo(existing);
    const record = { name, createdAtMs: this.#env.now() };
    this.#commit(() => this.#dir.db.db.prepare("INSERT INTO volume_groups (name, created_at) VALUES (?, ?)").run(name, record.createdAtMs));
    this.#catalog.volumeGroups.set(name, record);
    return volumeGroupInfo(record);
  }

  listVolumeGroups(): VolumeGroupInfo[] {
    this.#usable();
    return [...this.#catalog.volumeGroups.values()].map(volumeGroupInfo).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Deletes an empty volume group. */
  deleteVolumeGroup(name: string): void {
    this.#usable();
    this.#volumeGroup(name);
    const members = [...this.#catalog.images.values()].filter((i) => i.volumeGroup === name).length;
    if (members > 0) {
      throw new FailedPreconditionError(`Cannot delete volume group ${name}: it still holds ${members} volume(s) or snapshot(s). Delete them first.`);
    }
    this.#commit(() => this.#dir.db.db.prepare("DELETE FROM volume_groups WHERE name = ?").run(name));
    this.#catalog.volumeGroups.delete(name);
  }

  /** Creates an empty volume, or an instant clone of a snapshot or volume. Idempotent by name. */
  createVolume(request: CreateVolumeRequest): VolumeInfo {
    this.#usable();
    const { volumeGroup, name } = request;
    validateName("volume group", volumeGroup);
    validateName("volume", name);
    this.#volumeGroup(volumeGroup);
    const id = joinId(volumeGroup, name);
    const existing = this.#catalog.images.get(id);
    if (existing) {
      // A retry returns what the first call made, even if its source has gone since.
      const same =
        existing.kind === "volume" &&
        existing.sizeBytes === request.sizeBytes &&
        existing.sectorSize === (request.sectorSize ?? existing.sectorSize) &&
        sameSource(existing.source, request.source);
      if (same) return this.#volumeInfo(existing);
      throw new AlreadyExistsError(
        `Cannot create volume ${id}: ${existing.kind === "volume" ? "a volume" : "a snapshot"} of that name already exists with other parameters. Choose another name or delete it first.`,
      );
    }
    if (request.source?.kind === "diskSnapshot") return this.#restore(request, id);
    const source = request.source ? this.#settled(this.#cloneSource({ kind: request.source.kind, id: request.source.id }), "clone") : null;
    const sectorSize = request.sectorSize ?? source?.sectorSize ?? 512;
    if (sectorSize !== 512 && sectorSize !== 4096) {
      throw new InvalidArgumentError(`The sector size ${String(sectorSize)} is not supported; use 512 or 4096.`);
    }
    validateSize(`volume ${id}`, request.sizeBytes, sectorSize);
    const creationData: CreationSource =
      source && request.source ? { kind: request.source.kind, sourceId: source.id, sourceUniqueId: source.uniqueId } : { kind: "none" };
    if (source) {
      if (sectorSize !== source.sectorSize) {
        throw new InvalidArgumentError(`Cannot clone ${source.id} into volume ${id}: the source has ${source.sectorSize}-byte sectors, not ${sectorSize}.`);
      }
      if (request.sizeBytes < source.sizeBytes) {
        throw new FailedPreconditionError(
          `Cannot clone ${source.id} (${source.sizeBytes} bytes) into volume ${id} of ${request.sizeBytes} bytes: a clone must be at least as large as its source.`,
        );
      }
    }
    this.#checkProvisioning(id, request.sizeBytes);

    const map = source ? share(this.#dir.store, source.map) : { root: 0, depth: 0 };
    growTo(this.#dir.store, map, depthFor(this.#chunkCount(request.sizeBytes)));
    const record: ImageRecord = {
      id,
      volumeGroup,
      name,
      kind: "volume",
      uniqueId: this.#env.newUniqueId(),
      sizeBytes: request.sizeBytes,
      sectorSize,
      map,
      source: creationData,
      groupSnapshotId: null,
      seq: this.#catalog.nextSeq++,
      createdAtMs: this.#env.now(),
      mappedChunks: source?.mappedChunks ?? 0,
    };
    this.#commit(() => insertImage(this.#dir.db, record));
    this.#catalog.images.set(id, record);
    return this.#volumeInfo(record);
  }

  getVolume(id: string): VolumeInfo {
    this.#usable();
    return this.#volumeInfo(this.#image(id, "volume"));
  }

  listVolumes(options: ListOptions & { volumeGroup?: string } = {}): ListPage<VolumeInfo> {
    this.#usable();
    if (options.volumeGroup !== undefined) this.#volumeGroup(options.volumeGroup);
    const volumes = [...this.#catalog.images.values()].filter(
      (i) => i.kind === "volume" && (options.volumeGroup === undefined || i.volumeGroup === options.volumeGroup),
    );
    const page = paginate(volumes, (i) => i.id, options);
    return { entries: page.entries.map((i) => this.#volumeInfo(i)), nextToken: page.nextToken };
  }

  /** Grows a volume; asking for its current size is a no-op, a smaller one is refused. */
  resizeVolume(id: string, sizeBytes: number): VolumeInfo {
    this.#usable();
    const volume = this.#image(id, "volume");
    validateSize(`volume ${id}`, sizeBytes, volume.sectorSize);
    if (sizeBytes === volume.sizeBytes) return this.#volumeInfo(volume);
    if (sizeBytes < volume.sizeBytes) {
      throw new FailedPreconditionError(`Cannot shrink volume ${id} from ${volume.sizeBytes} to ${sizeBytes} bytes: volumes only grow.`);
    }
    this.#checkProvisioning(id, sizeBytes - volume.sizeBytes);
    growTo(this.#dir.store, volume.map, depthFor(this.#chunkCount(sizeBytes)));
    volume.sizeBytes = sizeBytes;
    this.#dir.mapChanged(volume);
    this.#commit();
    return this.#volumeInfo(volume);
  }

  /** Deletes a volume. Its snapshots and clones keep the chunks they share with it. */
  deleteVolume(id: string): void {
    this.#usable();
    const volume = this.#image(id, "volume");
    this.#durable.stopHydration(id);
    release(this.#dir.store, volume.map);
    this.#dir.forget(volume);
    this.#catalog.images.delete(id);
    // The hydration record goes in the same commit: a crash leaves either both or neither.
    this.#commit(() => {
      this.#dir.db.deleteImage.run(id);
      this.#durable.forgetHydration(id);
    });
  }

  /** Reads from a volume or a snapshot. */
  read(imageId: string, offset: number, length: number): Buffer {
    this.#usable();
    const image = this.#image(imageId);
    this.#notHydrating(image, "read");
    checkRange(image, offset, length, "read");
    return readImage(this.#dir.io, image.map, offset, length);
  }

  /** `read` into all of `target`, allocating nothing: the NBD data path's read. */
  readInto(imageId: string, offset: number, target: Uint8Array): void {
    this.#usable();
    const image = this.#image(imageId);
    this.#notHydrating(image, "read");
    checkRange(image, offset, target.byteLength, "read");
    readImageInto(this.#dir.io, image.map, offset, target);
  }

  /** `readInto` with the file reads on libuv's thread pool, for large reads; see readImageIntoAsync. */
  readIntoAsync(imageId: string, offset: number, target: Uint8Array): Promise<void> {
    this.#usable();
    const image = this.#image(imageId);
    this.#notHydrating(image, "read");
    checkRange(image, offset, target.byteLength, "read");
    return readImageIntoAsync(this.#dir.io, image.map, offset, target);
  }

  /** `read` for every volume, hydrating ones included (they read through to their disk snapshot). */
  async readAsync(imageId: string, offset: number, length: number): Promise<Buffer> {
    const hydration = await this.#durable.hydrationOf(imageId);
    if (!hydration) return this.read(imageId, offset, length);
    checkRange(this.#image(imageId), offset, length, "read");
    return hydration.read(offset, length);
  }

  /** `write` for every volume; on a hydrating one, chunks the write covers in part are hydrated first. */
  async writeAsync(volumeId: string, offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    const hydration = await this.#durable.hydrationOf(volumeId);
    if (!hydration) return this.write(volumeId, offset, data, options);
    checkRange(this.#image(volumeId, "volume"), offset, data.byteLength, "write");
    await hydration.write(offset, data, options.fua ?? false);
  }

  /** `writeZeroes` for every volume (a hydrating one gets real zeroes, so nothing reads through). */
  async writeZeroesAsync(volumeId: string, offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    const hydration = await this.#durable.hydrationOf(volumeId);
    if (!hydration) return this.writeZeroes(volumeId, offset, length, options);
    checkRange(this.#image(volumeId, "volume"), offset, length, "write");
    await hydration.zero(offset, length, options.fua ?? false);
  }

  /** `trim` for every volume (see writeZeroesAsync). */
  async trimAsync(volumeId: string, offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    return this.writeZeroesAsync(volumeId, offset, length, options);
  }

  /** Writes to a volume; durable at return with `fua`, otherwise at the next flush. */
  write(volumeId: string, offset: number, data: Uint8Array, options: WriteOptions = {}): void {
    this.#usable();
    const volume = this.#writable(volumeId, "write to");
    checkRange(volume, offset, data.byteLength, "write");
    this.#reserve(volume, offset, data.byteLength);
    this.#dir.mutate(volume, () => writeImage(this.#dir.io, volume.map, offset, data));
    if (options.fua) this.flush();
  }

  /** Makes a range of a volume read as zeroes, unmapping whole chunks unless `noHole`. */
  writeZeroes(volumeId: string, offset: number, length: number, options: ZeroOptions = {}): void {
    this.#zero(volumeId, offset, length, options.noHole ? "noHole" : "hole", options, "write zeroes to");
  }

  /** Discards a range of a volume; it reads back as zeroes. */
  trim(volumeId: string, offset: number, length: number, options: WriteOptions = {}): void {
    this.#zero(volumeId, offset, length, "hole", options, "trim");
  }

  /** Makes every write acknowledged so far durable. */
  flush(): void {
    this.#usable();
    this.#dir.flush();
  }

  /** Mapped ranges of an image, chunk-granular and coalesced, clipped to its size. */
  allocatedRanges(imageId: string): ByteRange[] {
    this.#usable();
    const image = this.#image(imageId);
    // A hydrating volume's unmapped chunks may hold data in the store: report everything as allocated, so no
    // client skips real data as a hole.
    if (image.kind === "volume" && this.#durable.isHydrating(image.id)) return [{ offset: 0, length: image.sizeBytes }];
    const chunks: number[] = [];
    forEachMapped(this.#dir.store, image.map, (chunk) => chunks.push(chunk));
    return coalesceChunks(chunks, this.chunkSizeBytes, image.sizeBytes);
  }

  /**
   * `allocatedRanges` of the window [offset, offset+length) only, at a cost that follows the window rather than the
   * image (NBD BLOCK_STATUS asks for a window at a time). The first and last range may reach past the window.
   */
  allocatedRangesIn(imageId: string, offset: number, length: number): ByteRange[] {
    this.#usable();
    const image = this.#image(imageId);
    const end = Math.min(offset + length, image.sizeBytes);
    if (end <= offset) return [];
    if (image.kind === "volume" && this.#durable.isHydrating(image.id)) return [{ offset, length: end - offset }];
    const chunks: number[] = [];
    const firstChunk = Math.floor(offset / this.chunkSizeBytes);
    forEachMappedInWindow(this.#dir.store, image.map, firstChunk, Math.ceil(end / this.chunkSizeBytes), (chunk) => chunks.push(chunk));
    return coalesceChunks(chunks, this.chunkSizeBytes, image.sizeBytes);
  }

  /** Chunks whose content may differ between two images (never missing a real difference), over the larger size. */
  diff(baseId: string, targetId: string): DiffResult {
    this.#usable();
    const base = this.#settled(this.#image(baseId), "diff");
    const target = this.#settled(this.#image(targetId), "diff");
    const chunks: number[] = [];
    diffChunks(this.#dir.store, base.map, target.map, (chunk) => chunks.push(chunk));
    const ranges = coalesceChunks(chunks, this.chunkSizeBytes, Math.max(base.sizeBytes, target.sizeBytes));
    return { chunkSizeBytes: this.chunkSizeBytes, changedBytes: ranges.reduce((sum, r) => sum + r.length, 0), ranges };
  }

  /** Takes an instant snapshot of a volume. Idempotent by name; limits apply to new snapshots only. */
  createSnapshot(request: { volumeGroup: string; name: string; sourceVolumeId: string }): SnapshotInfo {
    this.#usable();
    const plan = this.#snapshots.planSingle(request, (id) => this.#settled(this.#image(id, "volume"), "snapshot"), (vg) => this.#volumeGroup(vg));
    if (plan.existing) return this.#snapshotInfo(plan.existing);
    const created = this.#snapshots.apply(plan, this.#dir.store, (record) => this.#newSnapshotRecord(record));
    this.#commit(() => this.#snapshots.persist(this.#dir.db, created));
    return this.#snapshotInfo(created.snapshots[0]!);
  }

  /** Snapshots several volumes of one volume group at one point in time, in one commit. */
  createGroupSnapshot(request: { volumeGroup: string; name: string; volumeIds: string[] }): GroupSnapshotInfo {
    this.#usable();
    const plan = this.#snapshots.planGroup(request, (id) => this.#settled(this.#image(id, "volume"), "snapshot"), (vg) => this.#volumeGroup(vg));
    if (plan.existingGroup) return this.#snapshots.groupInfo(plan.existingGroup);
    const created = this.#snapshots.apply(plan, this.#dir.store, (record) => this.#newSnapshotRecord(record));
    this.#commit(() => this.#snapshots.persist(this.#dir.db, created));
    return this.#snapshots.groupInfo(created.group!);
  }

  getSnapshot(id: string): SnapshotInfo {
    this.#usable();
    return this.#snapshotInfo(this.#image(id, "snapshot"));
  }

  listSnapshots(options: ListOptions & { volumeGroup?: string; sourceVolumeId?: string } = {}): ListPage<SnapshotInfo> {
    this.#usable();
    if (options.volumeGroup !== undefined) this.#volumeGroup(options.volumeGroup);
    if (options.sourceVolumeId !== undefined) parseId("volume", options.sourceVolumeId);
    const snapshots = [...this.#catalog.images.values()].filter(
      (i) =>
        i.kind === "snapshot" &&
        (options.volumeGroup === undefined || i.volumeGroup === options.volumeGroup) &&
        (options.sourceVolumeId === undefined || (i.source.kind !== "none" && i.source.sourceId === options.sourceVolumeId)),
    );
    const page = paginate(snapshots, (i) => i.id, options);
    return { entries: page.entries.map((i) => this.#snapshotInfo(i)), nextToken: page.nextToken };
  }

  /** Deletes a snapshot; chunks that other images share stay. Members of a group snapshot go with their group. */
  deleteSnapshot(id: string): void {
    this.#usable();
    const snapshot = this.#image(id, "snapshot");
    if (snapshot.groupSnapshotId !== null && this.#catalog.groupSnapshots.has(snapshot.groupSnapshotId)) {
      throw new FailedPreconditionError(
        `Cannot delete snapshot ${id} on its own: it belongs to group snapshot ${snapshot.groupSnapshotId}. Delete the group snapshot instead.`,
      );
    }
    release(this.#dir.store, snapshot.map);
    this.#dir.forget(snapshot);
    this.#catalog.images.delete(id);
    this.#commit(() => this.#dir.db.deleteImage.run(id));
  }

  getGroupSnapshot(id: string): GroupSnapshotInfo {
    this.#usable();
    return this.#snapshots.groupInfo(this.#snapshots.group(id));
  }

  listGroupSnapshots(options: ListOptions & { volumeGroup?: string } = {}): ListPage<GroupSnapshotInfo> {
    this.#usable();
    const groups = [...this.#catalog.groupSnapshots.values()].filter(
      (g) => options.volumeGroup === undefined || g.volumeGroup === options.volumeGroup,
    );
    const page = paginate(groups, (g) => g.id, options);
    return { entries: page.entries.map((g) => this.#snapshots.groupInfo(g)), nextToken: page.nextToken };
  }

  /** Deletes a group snapshot and its member snapshots, in one commit. */
  deleteGroupSnapshot(id: string): void {
    this.#usable();
    const group = this.#snapshots.group(id);
    const members = group.members.map((m) => this.#catalog.images.get(m.snapshotId)).filter((m) => m !== undefined);
    for (const member of members) {
      release(this.#dir.store, member.map);
      this.#dir.forget(member);
      this.#catalog.images.delete(member.id);
    }
    this.#catalog.groupSnapshots.delete(id);
    this.#commit(() => {
      for (const member of members) this.#dir.db.deleteImage.run(member.id);
      this.#dir.db.db.prepare("DELETE FROM group_snapshots WHERE id = ?").run(id);
    });
  }

  // ---- hooks for the durable tier (src/storage/durable): pins and chunk-level access ----

  /**
   * Pins the current state of a volume or snapshot as an internal, unlisted image, O(1) like a snapshot. A pin
   * outlives its source and counts against no limit; it keeps its chunks until `unpin`.
   */
  pin(imageId: string, alongside?: (pin: PinInfo) => void): PinInfo {
    this.#usable();
    const image = this.#settled(this.#image(imageId), "export");
    const uniqueId = this.#env.newUniqueId();
    const source: ImageRecord["source"] =
      image.kind === "volume" ? { kind: "volume", sourceId: image.id, sourceUniqueId: image.uniqueId } : image.source;
    const record: ImageRecord = {
      id: `pin:${uniqueId}`,
      volumeGroup: "",
      name: uniqueId,
      kind: "pin",
      uniqueId,
      sizeBytes: image.sizeBytes,
      sectorSize: image.sectorSize,
      map: share(this.#dir.store, image.map),
      source,
      groupSnapshotId: null,
      seq: this.#catalog.nextSeq++,
      createdAtMs: this.#env.now(),
      mappedChunks: image.mappedChunks,
    };
    this.#catalog.images.set(record.id, record);
    const pin: PinInfo = { pinId: record.id, sizeBytes: record.sizeBytes, sectorSize: record.sectorSize, source };
    this.#commit(() => {
      insertImage(this.#dir.db, record);
      alongside?.(pin);
    });
    return pin;
  }

  /**
   * Releases a pin; chunks nothing else holds are freed. Unknown pins are ignored (release is idempotent).
   * `alongside` runs in the same commit, so the record that referenced the pin never outlives it or the reverse.
   */
  unpin(pinId: string, alongside?: () => void): void {
    this.#usable();
    const pin = this.#catalog.images.get(pinId);
    if (!pin || pin.kind !== "pin") {
      if (alongside) this.#commit(alongside);
      return;
    }
    release(this.#dir.store, pin.map);
    this.#dir.forget(pin);
    this.#catalog.images.delete(pinId);
    this.#commit(() => {
      this.#dir.db.deleteImage.run(pinId);
      alongside?.();
    });
  }

  /** True when a pin with this id exists. */
  hasPin(pinId: string): boolean {
    return this.#catalog.images.get(pinId)?.kind === "pin";
  }

  /** Chunk indexes mapped in `pinId`, or (with a base) those mapped differently than in `basePinId`: O(changed). */
  changedChunks(pinId: string, basePinId: string | null): number[] {
    this.#usable();
    const pin = this.#image(pinId, "pin");
    const chunks: number[] = [];
    if (basePinId === null) forEachMapped(this.#dir.store, pin.map, (chunk) => chunks.push(chunk));
    else diffChunks(this.#dir.store, this.#image(basePinId, "pin").map, pin.map, (chunk) => chunks.push(chunk));
    return chunks;
  }

  /** Reads whole chunks of any image, pins included; unmapped chunks come back as `null`. */
  readChunks(imageId: string, chunks: readonly number[]): (Buffer | null)[] {
    this.#usable();
    const image = this.#catalog.images.get(imageId) ?? this.#image(imageId);
    return chunks.map((chunk) => {
      const offset = chunk * this.chunkSizeBytes;
      if (offset >= image.sizeBytes || lookup(this.#dir.store, image.map, chunk) === 0) return null;
      return readImage(this.#dir.io, image.map, offset, Math.min(this.chunkSizeBytes, image.sizeBytes - offset));
    });
  }

  /** True when `chunk` of a volume is mapped (holds data of its own rather than reading as zeroes). */
  chunkMapped(volumeId: string, chunk: number): boolean {
    this.#usable();
    return lookup(this.#dir.store, this.#image(volumeId, "volume").map, chunk) !== 0;
  }

  /** Commits, then checks the committed metadata: reference counts, ownership, levels, bounds and leaks. */
  check(): CheckReport {
    this.#usable();
    this.flush();
    return checkConsistency(this.#dir.db, this.chunkSizeBytes);
  }

  // ---- durable tier: disk snapshots ----

  /** Starts exporting a snapshot, or a volume's current state, to the durable tier; see DurableTier. */
  exportDiskSnapshot(request: ExportRequest): DiskSnapshotInfo {
    this.#usable();
    return this.#durable.export(request);
  }

  /** Resolves when the export of `name` completed. */
  waitForDiskSnapshot(name: string): Promise<DiskSnapshotInfo> {
    this.#usable();
    return this.#durable.wait(name);
  }

  getDiskSnapshot(name: string): DiskSnapshotInfo {
    this.#usable();
    return this.#durable.show(name);
  }

  listDiskSnapshots(options: { sourceId?: string } = {}): DiskSnapshotInfo[] {
    this.#usable();
    return this.#durable.list(options);
  }

  /** Deletes a disk snapshot, folding its delta into the next member of its family. */
  deleteDiskSnapshot(name: string): Promise<void> {
    this.#usable();
    return this.#durable.delete(name);
  }

  /** Resolves when a restored volume has finished hydrating (at once for any other volume). */
  waitForHydration(volumeId: string): Promise<void> {
    this.#usable();
    return this.#durable.hydrated(volumeId);
  }

  diffDiskSnapshots(nameA: string, nameB: string): Promise<DiffResult> {
    this.#usable();
    return this.#durable.diff(nameA, nameB);
  }

  /** Copies a family's members that `target` lacks into its durable tier; the second run moves only new deltas. */
  copyDiskSnapshotFamily(family: string, target: San): Promise<{ membersCopied: string[]; bytesMoved: number }> {
    this.#usable();
    target.#usable();
    return this.#durable.copyFamily(family, target.#durable);
  }

  // ---- internals ----

  /** A volume created from a disk snapshot: empty, usable at once, reading through until hydrated. */
  #restore(request: CreateVolumeRequest, id: string): VolumeInfo {
    const name = request.source!.id;
    const { sectorSize, memberId } = this.#durable.checkRestore(name, request.sizeBytes, request.sectorSize);
    validateSize(`volume ${id}`, request.sizeBytes, sectorSize);
    this.#checkProvisioning(id, request.sizeBytes);
    const record: ImageRecord = {
      id,
      volumeGroup: request.volumeGroup,
      name: request.name,
      kind: "volume",
      uniqueId: this.#env.newUniqueId(),
      sizeBytes: request.sizeBytes,
      sectorSize,
      map: { root: 0, depth: depthFor(this.#chunkCount(request.sizeBytes)) },
      source: { kind: "diskSnapshot", sourceId: name, sourceUniqueId: memberId },
      groupSnapshotId: null,
      seq: this.#catalog.nextSeq++,
      createdAtMs: this.#env.now(),
      mappedChunks: 0,
    };
    // The volume and its hydration record commit together: a crash never leaves a restored volume that reads zeroes.
    const hydration = this.#durable.planHydration(id, name);
    this.#commit(() => {
      insertImage(this.#dir.db, record);
      this.#durable.recordHydration(hydration);
    });
    this.#catalog.images.set(id, record);
    this.#durable.startHydration(hydration);
    return this.#volumeInfo(record);
  }

  /** What the durable tier may do to this SAN. */
  #durableHost(): DurableHost {
    // Background jobs outlive no SAN: every call checks that this one is still open.
    const unguarded = (volumeId: string): ImageRecord => {
      this.#usable();
      return this.#image(volumeId, "volume");
    };
    return {
      dataDir: this.dataDir,
      chunkSizeBytes: this.chunkSizeBytes,
      limits: this.limits,
      db: this.#dir.db,
      now: () => this.#env.now(),
      newUniqueId: () => this.#env.newUniqueId(),
      openStore: (location) => (this.#env.openDurableStore ?? ((dir: string) => new DirectoryStore(dir)))(location),
      pin: (imageId, alongside) => this.pin(imageId, alongside),
      unpin: (pinId, alongside) => this.unpin(pinId, alongside),
      hasPin: (pinId) => this.hasPin(pinId),
      imageSource: (imageId) => {
        const image = this.#image(imageId);
        if (image.kind === "volume") return { sourceResourceId: image.id, family: image.uniqueId };
        if (image.source.kind === "none") throw new FailedPreconditionError(`Snapshot ${imageId} has no source volume recorded.`);
        return { sourceResourceId: image.source.sourceId, family: image.source.sourceUniqueId };
      },
      changedChunks: (pinId, basePinId) => this.changedChunks(pinId, basePinId),
      readChunks: (imageId, chunks) => this.readChunks(imageId, chunks),
      chunkMapped: (volumeId, chunk) => this.chunkMapped(volumeId, chunk),
      volumeExists: (volumeId) => {
        this.#usable();
        return this.#catalog.images.get(volumeId)?.kind === "volume";
      },
      volumeSize: (volumeId) => unguarded(volumeId).sizeBytes,
      readRaw: (volumeId, offset, length) => readImage(this.#dir.io, unguarded(volumeId).map, offset, length),
      writeRaw: (volumeId, offset, data, fua) => {
        const volume = unguarded(volumeId);
        this.#reserve(volume, offset, data.byteLength);
        this.#dir.mutate(volume, () => writeImage(this.#dir.io, volume.map, offset, data));
        if (fua) this.flush();
      },
      zeroRaw: (volumeId, offset, length, fua) => {
        const volume = unguarded(volumeId);
        this.#reserve(volume, offset, length, "noHole");
        this.#dir.mutate(volume, () => zeroImage(this.#dir.io, volume.map, offset, length, volume.sizeBytes, "noHole"));
        if (fua) this.flush();
      },
      flush: () => this.flush(),
    };
  }

  #usable(): void {
    this.#dir.usable();
  }

  #commit(catalogChanges?: () => void): void {
    this.#dir.commit(catalogChanges);
  }

  #zero(volumeId: string, offset: number, length: number, mode: ZeroMode, options: WriteOptions, verb: string): void {
    this.#usable();
    const volume = this.#writable(volumeId, verb);
    checkRange(volume, offset, length, "write");
    this.#reserve(volume, offset, length, mode);
    this.#dir.mutate(volume, () => zeroImage(this.#dir.io, volume.map, offset, length, volume.sizeBytes, mode));
    if (options.fua) this.flush();
  }

  /** Refuses, before any change, a request needing more new extents than the SAN can give. */
  #reserve(volume: ImageRecord, offset: number, length: number, zero?: ZeroMode): void {
    const needed = extentsNeeded(this.#dir.io, volume.map, offset, length, volume.sizeBytes, zero);
    if (needed <= this.#dir.store.allocatableExtents()) return;
    // Extents released since the last commit become reusable once a commit records their release.
    if (this.#dir.store.pendingFreeCount > 0) this.#commit();
    const available = this.#dir.store.allocatableExtents();
    if (needed > available) {
      throw new CapacityExceededError(
        `Cannot write ${length} bytes to ${volume.id}: it needs ${needed} new ${this.chunkSizeBytes}-byte chunks and the SAN has ${available} free ` +
          `of ${this.capacityBytes} bytes capacity. Delete snapshots or volumes, or grow the SAN.`,
      );
    }
  }

  /** Elastic SAN rule: the volumes' sizes together may not exceed the SAN's capacity. */
  #checkProvisioning(id: string, addedBytes: number): void {
    const provisioned = this.info().provisionedBytes;
    if (provisioned + addedBytes > this.capacityBytes) {
      throw new CapacityExceededError(
        `Cannot provision ${addedBytes} more bytes for ${id}: volumes already take ${provisioned} of the SAN's ${this.capacityBytes} bytes. ` +
          `Delete volumes or grow the SAN.`,
      );
    }
  }

  #chunkCount(sizeBytes: number): number {
    return Math.ceil(sizeBytes / this.chunkSizeBytes);
  }

  #volumeGroup(name: string): void {
    validateName("volume group", name);
    if (!this.#catalog.volumeGroups.has(name)) {
      throw new NotFoundError(`Volume group ${name} does not exist; create it with 'esan volume-group create ${name}'.`);
    }
  }

  /** The image with this id, optionally of one kind; NotFound names what was looked for. */
  #image(id: string, kind?: ImageKind): ImageRecord {
    const found = this.#catalog.images.get(id);
    // The hot path (every read and write) skips validation: a known id is a valid one. Pins are internal.
    if (found && (kind === undefined ? found.kind !== "pin" : found.kind === kind)) return found;
    if (kind === "pin") throw new NotFoundError(`No pin ${id} exists.`);
    parseId(kind ?? "image", id);
    const image = found;
    if (!image || (kind !== undefined && image.kind !== kind)) {
      const what = kind ?? "volume or snapshot";
      const other = image ? ` (${id} is a ${image.kind})` : "";
      throw new NotFoundError(`No ${what} ${id} exists${other}.`);
    }
    return image;
  }

  /**
   * Refuses to share the map of a volume that is still hydrating: its unmapped chunks live in the durable store, so
   * a snapshot, clone, export or diff of the map alone would see zeroes where data is.
   */
  #settled(image: ImageRecord, verb: string): ImageRecord {
    if (image.kind === "volume" && this.#durable.isHydrating(image.id)) {
      const status = this.#durable.hydrationStatus(image.id);
      throw new FailedPreconditionError(
        `Cannot ${verb} ${image.id}: it is still hydrating from disk snapshot ${status?.diskSnapshot ?? "?"} (${status?.completionPercent ?? 0}%). Wait for hydration to complete, then retry.`,
      );
    }
    return image;
  }

  /** Sync I/O cannot read through to a durable store; hydrating volumes take the async methods. */
  #notHydrating(image: ImageRecord, verb: string): void {
    if (image.kind === "volume" && this.#durable.isHydrating(image.id)) {
      const status = this.#durable.hydrationStatus(image.id);
      throw new FailedPreconditionError(
        `Cannot ${verb} ${image.id} synchronously: it is hydrating from disk snapshot ${status?.diskSnapshot ?? "?"} (${status?.completionPercent ?? 0}%). Use the async I/O methods.`,
      );
    }
  }

  #writable(id: string, verb: string): ImageRecord {
    const image = this.#image(id);
    this.#notHydrating(image, verb);
    if (image.kind !== "volume") throw new ReadOnlyError(`Cannot ${verb} ${id}: it is a snapshot, and snapshots are read-only. Clone it into a volume to change it.`);
    return image;
  }

  #cloneSource(source: { kind: string; id: string }): ImageRecord {
    if (source.kind !== "snapshot" && source.kind !== "volume") {
      throw new InvalidArgumentError(`The clone source kind '${String(source.kind)}' is not supported; use snapshot or volume.`);
    }
    return this.#image(source.id, source.kind);
  }

  #newSnapshotRecord(fields: Pick<ImageRecord, "id" | "volumeGroup" | "name" | "groupSnapshotId">): ImageRecord {
    return {
      ...fields,
      kind: "snapshot",
      uniqueId: this.#env.newUniqueId(),
      seq: this.#catalog.nextSeq++,
      createdAtMs: this.#env.now(),
      mappedChunks: 0,
    } as ImageRecord;
  }

  #volumeInfo(image: ImageRecord): VolumeInfo {
    let snapshotCount = 0;
    for (const other of this.#catalog.images.values()) {
      if (other.kind === "snapshot" && other.source.kind !== "none" && other.source.sourceUniqueId === image.uniqueId) snapshotCount++;
    }
    return { ...describeImage(image, this.#usage(image)), snapshotCount, hydration: this.#durable.hydrationStatus(image.id) };
  }

  #snapshotInfo(image: ImageRecord): SnapshotInfo {
    const previous = this.#snapshots.previousOfSource(image);
    const changedBytes = previous ? this.diff(previous.id, image.id).changedBytes : 0;
    return describeSnapshot(image, this.#usage(image), changedBytes);
  }

  /** Allocation (kept as a count, O(1)) and exclusive use (O(pages this image holds alone)). */
  #usage(image: ImageRecord): { allocatedBytes: number; usedBytes: number } {
    return {
      allocatedBytes: image.mappedChunks * this.chunkSizeBytes,
      usedBytes: countExclusiveChunks(this.#dir.store, image.map) * this.chunkSizeBytes,
    };
  }


}
