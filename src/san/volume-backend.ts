// The NBD backend of one SAN image: a volume read-write, a snapshot read-only, engine errors mapped to NBD errors.
import { NbdError, type NbdBackend, type NbdExtent, type NbdWriteFlags, type NbdZeroFlags } from "../nbd/backend.ts";
import { EsanError } from "../storage/errors.ts";
import type { San } from "../storage/san.ts";
import type { ByteRange } from "../storage/types.ts";

/** Largest single NBD request a volume export takes: 32 MiB, the most clients send without negotiating. */
export const VOLUME_MAXIMUM_BLOCK_BYTES = 32 * 1024 * 1024;

/**
 * Maps an engine refusal to the NBD error the client sees. NotFound means the image was deleted under an open
 * connection (or is unknown at open); on the wire that is EIO, because the device went away.
 */
export function nbdErrorFromEngine(err: unknown, what: string): unknown {
  if (!(err instanceof EsanError)) return err;
  switch (err.code) {
    case "OutOfRange":
    case "InvalidArgument":
      return new NbdError("EINVAL", `${what}: ${err.message}`, { cause: err });
    case "ReadOnly":
      return new NbdError("EPERM", `${what}: ${err.message}`, { cause: err });
    case "CapacityExceeded":
      return new NbdError("ENOSPC", `${what}: ${err.message}`, { cause: err });
    case "NotFound":
      return new NbdError("EIO", `${what}: ${err.message}`, { cause: err });
    default:
      return new NbdError("EIO", `${what}: ${err.message}`, { cause: err });
  }
}

/** A promise rejection handler that turns engine errors into NbdErrors. */
function rethrowMapped(what: string): (err: unknown) => never {
  return (err: unknown) => {
    throw nbdErrorFromEngine(err, what);
  };
}

/** Which kind of image an export serves, and its fixed geometry (fixed for the life of one NBD connection). */
export interface ImageGeometry {
  id: string;
  kind: "volume" | "snapshot";
  /** Changes when an image of the same id is created anew. */
  uniqueId: string;
  sizeBytes: number;
  sectorSize: number;
  /** A volume restored from a disk snapshot that is still copying in: its I/O must take the engine's async path. */
  hydrating: boolean;
}

/**
 * Looks an image up for export: a volume, else a snapshot. Unknown ids throw NbdError ENOENT, which the protocol
 * core answers with NBD_REP_ERR_UNKNOWN.
 */
export function imageGeometry(san: San, id: string): ImageGeometry {
  const attempt = <T extends { sizeBytes: number; sectorSize: number; uniqueId: string }>(get: () => T): T | null => {
    try {
      return get();
    } catch (err) {
      if (err instanceof EsanError && (err.code === "NotFound" || err.code === "InvalidArgument")) return null;
      throw nbdErrorFromEngine(err, `Cannot open ${id}`);
    }
  };
  const volume = attempt(() => san.getVolume(id));
  if (volume) {
    const hydrating = volume.hydration?.state === "hydrating";
    return { id, kind: "volume", uniqueId: volume.uniqueId, sizeBytes: volume.sizeBytes, sectorSize: volume.sectorSize, hydrating };
  }
  const snapshot = attempt(() => san.getSnapshot(id));
  if (snapshot) {
    return { id, kind: "snapshot", uniqueId: snapshot.uniqueId, sizeBytes: snapshot.sizeBytes, sectorSize: snapshot.sectorSize, hydrating: false };
  }
  throw new NbdError("ENOENT", `No volume or snapshot ${id} exists.`);
}

/** A snapshot's allocation, which never changes, shared by every open export of it. */
interface CachedRanges {
  ranges: ByteRange[] | null;
  openBackends: number;
}

/** Per SAN, keyed by snapshot id and uniqueId (a re-created snapshot of the same name is another image). */
const snapshotRanges = new WeakMap<San, Map<string, CachedRanges>>();

/**
 * One SAN image as an NBD backend. Every call goes straight to the synchronous engine, so a pipelined burst of
 * requests runs without promises. FUA and flush commit the whole SAN (CAN_MULTI_CONN is therefore honest), and
 * zeroing whole chunks only unmaps them (FAST_ZERO is honest unless NO_HOLE asks for real zeroes). A volume that was
 * hydrating when opened uses the engine's async I/O for the whole connection (those methods fall back to the
 * synchronous ones once hydration is done); it writes real zeroes, so it offers no fast zeroing.
 */
export class VolumeBackend implements NbdBackend {
  readonly sizeBytes: number;
  readonly minimumBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maximumBlockSize: number;
  readonly readOnly: boolean;
  readonly #san: San;
  readonly #id: string;
  readonly #cache: CachedRanges | null = null;
  readonly #cacheKey: string = "";
  readonly #hydrating: boolean;
  #closed = false;

  constructor(san: San, geometry: ImageGeometry, options: { maximumBlockSize?: number } = {}) {
    this.#san = san;
    this.#id = geometry.id;
    this.sizeBytes = geometry.sizeBytes;
    this.minimumBlockSize = geometry.sectorSize;
    this.preferredBlockSize = Math.max(san.chunkSizeBytes, geometry.sectorSize);
    this.maximumBlockSize = options.maximumBlockSize ?? VOLUME_MAXIMUM_BLOCK_BYTES;
    this.readOnly = geometry.kind === "snapshot";
    this.#hydrating = geometry.hydrating;
    if (this.readOnly) {
      let perSan = snapshotRanges.get(san);
      if (!perSan) snapshotRanges.set(san, (perSan = new Map<string, CachedRanges>()));
      const key = `${geometry.id}@${geometry.uniqueId}`;
      let cache = perSan.get(key);
      if (!cache) perSan.set(key, (cache = { ranges: null, openBackends: 0 }));
      cache.openBackends++;
      this.#cache = cache;
      this.#cacheKey = key;
    }
  }

  /** Opens the volume or snapshot `id` of `san` for export. */
  static open(san: San, id: string, options: { maximumBlockSize?: number } = {}): VolumeBackend {
    return new VolumeBackend(san, imageGeometry(san, id), options);
  }

  canTrim(): boolean {
    return true;
  }

  canZero(): boolean {
    return true;
  }

  canFastZero(): boolean {
    return !this.#hydrating;
  }

  canFua(): boolean {
    return true;
  }

  canFlush(): boolean {
    return true;
  }

  canExtents(): boolean {
    return true;
  }

  canMultiConn(): boolean {
    return true;
  }

  pread(offset: number, length: number): Buffer | Promise<Buffer> {
    const what = `Read of ${this.#id} failed`;
    if (this.#hydrating) return this.#san.readAsync(this.#id, offset, length).catch(rethrowMapped(what));
    try {
      return this.#san.read(this.#id, offset, length);
    } catch (err) {
      throw nbdErrorFromEngine(err, what);
    }
  }

  pwrite(offset: number, data: Buffer, flags: NbdWriteFlags): void | Promise<void> {
    const what = `Write to ${this.#id} failed`;
    if (this.#hydrating) return this.#san.writeAsync(this.#id, offset, data, { fua: flags.fua }).catch(rethrowMapped(what));
    try {
      this.#san.write(this.#id, offset, data, { fua: flags.fua });
    } catch (err) {
      throw nbdErrorFromEngine(err, what);
    }
  }

  zero(offset: number, length: number, flags: NbdZeroFlags): void | Promise<void> {
    // NO_HOLE makes the engine write real zeroes chunk by chunk: no faster than a write, so FAST_ZERO must refuse.
    if (flags.fastZero && flags.noHole) throw new NbdError("ENOTSUP", "Zeroing with NO_HOLE writes every chunk; it is not fast.");
    const what = `Zeroing ${this.#id} failed`;
    const options = { fua: flags.fua, noHole: flags.noHole };
    if (this.#hydrating) return this.#san.writeZeroesAsync(this.#id, offset, length, options).catch(rethrowMapped(what));
    try {
      this.#san.writeZeroes(this.#id, offset, length, options);
    } catch (err) {
      throw nbdErrorFromEngine(err, what);
    }
  }

  trim(offset: number, length: number, flags: NbdWriteFlags): void | Promise<void> {
    const what = `Trim of ${this.#id} failed`;
    if (this.#hydrating) return this.#san.trimAsync(this.#id, offset, length, { fua: flags.fua }).catch(rethrowMapped(what));
    try {
      this.#san.trim(this.#id, offset, length, { fua: flags.fua });
    } catch (err) {
      throw nbdErrorFromEngine(err, what);
    }
  }

  flush(): void {
    try {
      this.#san.flush();
    } catch (err) {
      throw nbdErrorFromEngine(err, "Flush failed");
    }
  }

  /**
   * Allocation of [offset, offset+length): mapped chunks are data, unmapped ones read as zeroes (hole + zero).
   * The engine only answers for the whole image, so the result is clipped here; a snapshot's answer never changes
   * and is computed once. (Engine request: a ranged allocation query, see the NBD report.)
   */
  extents(offset: number, length: number): NbdExtent[] {
    let ranges: ByteRange[];
    try {
      if (this.#cache) ranges = this.#cache.ranges ??= this.#san.allocatedRanges(this.#id);
      else ranges = this.#san.allocatedRanges(this.#id);
    } catch (err) {
      throw nbdErrorFromEngine(err, `Allocation of ${this.#id} failed`);
    }
    return extentsInWindow(ranges, offset, Math.min(offset + length, this.sizeBytes));
  }

  /** Releases this export's hold on the snapshot allocation cache; the last one out drops it. */
  close(): void {
    if (this.#closed || !this.#cache) return;
    this.#closed = true;
    if (--this.#cache.openBackends === 0) snapshotRanges.get(this.#san)?.delete(this.#cacheKey);
  }
}

/**
 * The extents of [start, end) given sorted, non-overlapping mapped ranges: mapped runs are data, the gaps between
 * them holes that read as zeroes. Binary search finds the first range, so the cost is O(log n + extents returned).
 */
export function extentsInWindow(ranges: readonly ByteRange[], start: number, end: number): NbdExtent[] {
  const extents: NbdExtent[] = [];
  if (end <= start) return extents;
  let low = 0;
  let high = ranges.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const range = ranges[mid]!;
    if (range.offset + range.length <= start) low = mid + 1;
    else high = mid;
  }
  let position = start;
  for (let i = low; i < ranges.length && position < end; i++) {
    const range = ranges[i]!;
    const rangeStart = Math.max(range.offset, position);
    if (rangeStart >= end) break;
    if (rangeStart > position) extents.push({ offset: position, length: rangeStart - position, hole: true, zero: true });
    const rangeEnd = Math.min(range.offset + range.length, end);
    extents.push({ offset: rangeStart, length: rangeEnd - rangeStart, hole: false, zero: false });
    position = rangeEnd;
  }
  if (position < end) extents.push({ offset: position, length: end - position, hole: true, zero: true });
  return extents;
}
