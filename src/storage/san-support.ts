// Small pure helpers of the SAN: option validation, range coalescing and the JSON shapes of images.
import type { ImageRecord } from "./catalog.ts";
import { InvalidArgumentError, OutOfRangeError } from "./errors.ts";
import {
  type ByteRange,
  type CreateVolumeRequest,
  type CreationSource,
  DEFAULT_LIMITS,
  type SanLimits,
  type SnapshotInfo,
  type VolumeGroupInfo,
  type VolumeInfo,
} from "./types.ts";

/** Largest single read or write: callers stream bigger ranges in pieces. */
const MAX_IO_BYTES = 256 * 1024 * 1024;

/** Throws unless the chunk size is a power of two from 4 KiB to 1 MiB. */
export function validateChunkSize(chunkSizeBytes: number): void {
  const ok = Number.isSafeInteger(chunkSizeBytes) && chunkSizeBytes >= 4096 && chunkSizeBytes <= 1024 * 1024 && (chunkSizeBytes & (chunkSizeBytes - 1)) === 0;
  if (!ok) {
    throw new InvalidArgumentError(`The chunk size ${String(chunkSizeBytes)} is not allowed: use a power of two from 4 KiB to 1 MiB.`);
  }
}

/** Fills unset limits with the defaults and refuses non-positive ones. */
export function validateLimits(limits: Partial<SanLimits>): SanLimits {
  const merged: SanLimits = { ...DEFAULT_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) };
  for (const [key, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidArgumentError(`The limit ${key} must be a positive whole number; got ${String(value)}.`);
    }
  }
  return merged;
}

/** Sorted chunk indexes to byte ranges, merging neighbours and clipping the last range at `limitBytes`. */
export function coalesceChunks(chunks: number[], chunkSizeBytes: number, limitBytes: number): ByteRange[] {
  const ranges: ByteRange[] = [];
  for (const chunk of chunks) {
    const offset = chunk * chunkSizeBytes;
    if (offset >= limitBytes) break;
    const length = Math.min(chunkSizeBytes, limitBytes - offset);
    const last = ranges[ranges.length - 1];
    if (last && last.offset + last.length === offset) last.length += length;
    else ranges.push({ offset, length });
  }
  return ranges;
}

/** The fields volumes and snapshots share in their JSON shape. */
export function describeImage(image: ImageRecord, usage: { allocatedBytes: number; usedBytes: number }): Omit<VolumeInfo, "snapshotCount" | "hydration"> {
  return {
    id: image.id,
    volumeGroup: image.volumeGroup,
    name: image.name,
    uniqueId: image.uniqueId,
    sizeBytes: image.sizeBytes,
    sectorSize: image.sectorSize,
    creationData: image.source,
    createdAt: new Date(image.createdAtMs).toISOString(),
    allocatedBytes: usage.allocatedBytes,
    usedBytes: usage.usedBytes,
  };
}

/** The JSON shape of a snapshot. */
export function describeSnapshot(image: ImageRecord, usage: { allocatedBytes: number; usedBytes: number }, changedBytes: number): SnapshotInfo {
  const source = image.source.kind === "none" ? { sourceId: "", sourceUniqueId: "" } : image.source;
  return {
    id: image.id,
    volumeGroup: image.volumeGroup,
    name: image.name,
    uniqueId: image.uniqueId,
    sourceId: source.sourceId,
    sourceUniqueId: source.sourceUniqueId,
    sizeBytes: image.sizeBytes,
    sectorSize: image.sectorSize,
    createdAt: new Date(image.createdAtMs).toISOString(),
    usedBytes: usage.usedBytes,
    changedBytes,
    groupSnapshotId: image.groupSnapshotId,
    readyToUse: true,
  };
}

/** Throws unless [offset, offset+length) is a valid range of the image. */
export function checkRange(image: ImageRecord, offset: number, length: number, verb: "read" | "write"): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new InvalidArgumentError(`Cannot ${verb} ${image.id}: offset ${String(offset)} and length ${String(length)} must be whole numbers of 0 or more.`);
  }
  if (length > MAX_IO_BYTES) {
    throw new InvalidArgumentError(`Cannot ${verb} ${length} bytes of ${image.id} at once: the limit is ${MAX_IO_BYTES}; split the request.`);
  }
  if (offset + length > image.sizeBytes) {
    throw new OutOfRangeError(
      `Cannot ${verb} ${length} bytes at offset ${offset} of ${image.id}: the ${image.kind} is ${image.sizeBytes} bytes long.`,
    );
  }
}

/** Throws unless a size is positive and a multiple of the sector size. */
export function validateSize(what: string, sizeBytes: number, sectorSize: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
    throw new InvalidArgumentError(`The size of ${what} must be a positive whole number of bytes; got ${String(sizeBytes)}.`);
  }
  if (sizeBytes % sectorSize !== 0) {
    throw new InvalidArgumentError(`The size of ${what} (${sizeBytes} bytes) is not a multiple of its ${sectorSize}-byte sector size.`);
  }
}

/** The JSON shape of a volume group. */
export function volumeGroupInfo(record: { name: string; createdAtMs: number }): VolumeGroupInfo {
  return { id: record.name, name: record.name, createdAt: new Date(record.createdAtMs).toISOString() };
}

/** True when a create request names the source an existing volume was made from. */
export function sameSource(existing: CreationSource, requested: CreateVolumeRequest["source"]): boolean {
  if (existing.kind === "none" || requested === undefined) return existing.kind === "none" && requested === undefined;
  return existing.kind === requested.kind && existing.sourceId === requested.id;
}
