// Small pure helpers of the SAN: option validation, range coalescing and the JSON shapes of images.
import type { ImageRecord } from "./catalog.ts";
import { InvalidArgumentError } from "./errors.ts";
import { type ByteRange, DEFAULT_LIMITS, type SanLimits, type SnapshotInfo, type VolumeInfo } from "./types.ts";

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
export function describeImage(image: ImageRecord, usage: { allocatedBytes: number; usedBytes: number }): Omit<VolumeInfo, "snapshotCount"> {
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
