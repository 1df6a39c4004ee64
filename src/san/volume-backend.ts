// The NBD backend of one SAN image: a volume read-write, a snapshot read-only, engine errors mapped to NBD errors.
import { NbdError, type NbdBackend, type NbdExtent, type NbdWriteFlags, type NbdZeroFlags } from "../nbd/backend.ts";
import { EsanError } from "../storage/errors.ts";
import type { San } from "../storage/san.ts";
import type { ByteRange } from "../storage/types.ts";

/** Largest single NBD request a volume export takes: 32 MiB, the most clients send without negotiating. */
export const VOLUME_MAXIMUM_BLOCK_BYTES = 32 * 1024 * 1024;

/**
 * Reads of at least this size copy their data out of the page cache on libuv's thread pool, in parallel with the
 * main thread's socket work. Smaller ones stay synchronous: handing a 4 KiB read to the pool costs more (two thread
 * switches, a promise) than the copy it saves.
 */
export const ASYNC_READ_MIN_BYTES = 64 * 1024;

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

/** A promise rejection handler that turns engine errors into NbdErrors; `what` names the failed operation. */
function rethrowMapped(what: () => string): (err: unknown) => never {
  return (err: unknown) => {
    throw nbdErrorFromEngine(err, what());
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

/**
 * One SAN image as an NBD backend. Every call goes straight to the synchronous engine, so a pipelined burst of
 * requests runs without promises; only large reads copy their data on the thread pool. FUA and flush commit the
 * whole SAN (CAN_MULTI_CONN is therefore honest), and zeroing whole chunks only unmaps them (FAST_ZERO is honest
 * unless NO_HOLE asks for real zeroes). A volume that was hydrating when opened uses the engine's async I/O for the
 * whole connection (those methods fall back to the synchronous ones once hydration is done); it writes real zeroes,
 * so it offers no fast zeroing.
 */
export class VolumeBackend implements NbdBackend {
  readonly sizeBytes: number;
  readonly minimumBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maximumBlockSize: number;
  readonly readOnly: boolean;
  readonly #san: San;
  readonly #id: string;
  readonly #hydrating: boolean;

  constructor(san: San, geometry: ImageGeometry, options: { maximumBlockSize?: number } = {}) {
    this.#san = san;
    this.#id = geometry.id;
    this.sizeBytes = geometry.sizeBytes;
    this.minimumBlockSize = geometry.sectorSize;
    this.preferredBlockSize = Math.max(san.chunkSizeBytes, geometry.sectorSize);
    this.maximumBlockSize = options.maximumBlockSize ?? VOLUME_MAXIMUM_BLOCK_BYTES;
    this.readOnly = geometry.kind === "snapshot";
    this.#hydrating = geometry.hydrating;
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

  pread(offset: number, target: Buffer): void | Promise<void> {
    if (this.#hydrating) {
      return this.#san.readAsync(this.#id, offset, target.byteLength).then(
        (data) => void data.copy(target),
        rethrowMapped(() => `Read of ${this.#id} failed`),
      );
    }
    try {
      if (target.byteLength >= ASYNC_READ_MIN_BYTES) {
        return this.#san.readIntoAsync(this.#id, offset, target).catch(rethrowMapped(() => `Read of ${this.#id} failed`));
      }
      this.#san.readInto(this.#id, offset, target);
    } catch (err) {
      throw nbdErrorFromEngine(err, `Read of ${this.#id} failed`);
    }
  }

  pwrite(offset: number, data: Buffer, flags: NbdWriteFlags): void | Promise<void> {
    if (this.#hydrating) {
      return this.#san.writeAsync(this.#id, offset, data, { fua: flags.fua }).catch(rethrowMapped(() => `Write to ${this.#id} failed`));
    }
    try {
      this.#san.write(this.#id, offset, data, { fua: flags.fua });
    } catch (err) {
      throw nbdErrorFromEngine(err, `Write to ${this.#id} failed`);
    }
  }

  zero(offset: number, length: number, flags: NbdZeroFlags): void | Promise<void> {
    // NO_HOLE makes the engine write real zeroes chunk by chunk: no faster than a write, so FAST_ZERO must refuse.
    if (flags.fastZero && flags.noHole) throw new NbdError("ENOTSUP", "Zeroing with NO_HOLE writes every chunk; it is not fast.");
    const options = { fua: flags.fua, noHole: flags.noHole };
    if (this.#hydrating) return this.#san.writeZeroesAsync(this.#id, offset, length, options).catch(rethrowMapped(() => `Zeroing ${this.#id} failed`));
    try {
      this.#san.writeZeroes(this.#id, offset, length, options);
    } catch (err) {
      throw nbdErrorFromEngine(err, `Zeroing ${this.#id} failed`);
    }
  }

  trim(offset: number, length: number, flags: NbdWriteFlags): void | Promise<void> {
    if (this.#hydrating) return this.#san.trimAsync(this.#id, offset, length, { fua: flags.fua }).catch(rethrowMapped(() => `Trim of ${this.#id} failed`));
    try {
      this.#san.trim(this.#id, offset, length, { fua: flags.fua });
    } catch (err) {
      throw nbdErrorFromEngine(err, `Trim of ${this.#id} failed`);
    }
  }

  flush(): void {
    try {
      this.#san.flush();
    } catch (err) {
      throw nbdErrorFromEngine(err, "Flush failed");
    }
  }

  /** Allocation of [offset, offset+length): mapped chunks are data, unmapped ones read as zeroes (hole + zero). */
  extents(offset: number, length: number): NbdExtent[] {
    const end = Math.min(offset + length, this.sizeBytes);
    let ranges: ByteRange[];
    try {
      ranges = this.#san.allocatedRangesIn(this.#id, offset, end - offset);
    } catch (err) {
      throw nbdErrorFromEngine(err, `Allocation of ${this.#id} failed`);
    }
    return extentsInWindow(ranges, offset, end);
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
