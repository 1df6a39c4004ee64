// Part 1 of `npm run bench:durable`: fill a volume, export it in full, then export 1% changes incrementally.

import { type DataPattern, mibPerSecond, progress, type Span, timeAsync } from "./durable-common.ts";
import { type RandomInt, sampleDistinct } from "./rng.ts";
import { timeMs } from "./storage-common.ts";
import { formatBytes, formatMs } from "./table.ts";
import type { San } from "../../src/storage/san.ts";

/** A volume the bench wrote, with the data pattern that says what each of its states holds. */
export interface WrittenVolume {
  volumeId: string;
  sizeBytes: number;
  pattern: DataPattern;
}

/** A disk snapshot the bench exported, with the chunk generations of the state it holds. */
export interface ExportedMember {
  name: string;
  generations: Uint32Array;
  /** Members a restore of it reads: 1 for a full member, more for an incremental one. */
  chainLength: number;
}

/** How the changed 1% is laid out in the volume. */
export type ChangeLayout = "random" | "contiguous";

/** One timed export: from `exportDiskSnapshot` until `waitForDiskSnapshot` resolves. */
export interface ExportTiming {
  kind: "full" | ChangeLayout;
  changedChunks: number;
  usedBytes: number;
  ms: number;
  span: Span;
}

/** Writes the whole volume in sequential writes of `writeBytes`, then flushes; returns the time it took. */
export function fillVolume(san: San, volume: WrittenVolume, writeBytes: number, generation: number): number {
  const scratch = Buffer.alloc(writeBytes);
  const ms = timeMs(() => {
    for (let offset = 0; offset < volume.sizeBytes; offset += writeBytes) {
      const length = Math.min(writeBytes, volume.sizeBytes - offset);
      san.write(volume.volumeId, offset, volume.pattern.fill(scratch.subarray(0, length), offset, generation));
    }
    san.flush();
  });
  volume.pattern.record(0, volume.sizeBytes, generation);
  progress(`wrote ${formatBytes(volume.sizeBytes)} to ${volume.volumeId} in ${formatMs(ms)} (${mibPerSecond(volume.sizeBytes, ms).toFixed(0)} MiB/s)`);
  return ms;
}

/** Exports the volume's current state as disk snapshot `name` and waits for it to complete. */
export async function exportVolume(san: San, volume: WrittenVolume, name: string, previous: ExportedMember | null): Promise<{ member: ExportedMember; ms: number; span: Span; usedBytes: number }> {
  const { ms, span, value: info } = await timeAsync(async () => {
    san.exportDiskSnapshot({ name, sourceId: volume.volumeId });
    return san.waitForDiskSnapshot(name);
  });
  if (info.completionPercent !== 100) throw new Error(`Disk snapshot ${name} resolved at ${info.completionPercent}%, not 100%.`);
  const member = { name, generations: volume.pattern.generations.slice(), chainLength: previous ? previous.chainLength + 1 : 1 };
  return { member, ms, span, usedBytes: info.usedBytes };
}

/**
 * Overwrites `fraction` of the volume with generation `generation`, either as whole chunks picked at random or as
 * one contiguous, chunk-aligned run written in `writeBytes` pieces, and flushes. Returns the chunks changed.
 */
export function changeVolume(san: San, volume: WrittenVolume, layout: ChangeLayout, fraction: number, writeBytes: number, generation: number, random: RandomInt): number {
  const chunkBytes = volume.pattern.chunkSizeBytes;
  const chunkCount = volume.sizeBytes / chunkBytes;
  const changedChunks = Math.ceil(Math.floor(volume.sizeBytes * fraction) / chunkBytes);
  const write = (offset: number, length: number, scratch: Buffer): void => {
    san.write(volume.volumeId, offset, volume.pattern.fill(scratch.subarray(0, length), offset, generation));
    volume.pattern.record(offset, length, generation);
  };
  if (layout === "random") {
    const scratch = Buffer.alloc(chunkBytes);
    for (const chunk of sampleDistinct(random, chunkCount, changedChunks)) write(chunk * chunkBytes, chunkBytes, scratch);
  } else {
    const scratch = Buffer.alloc(writeBytes);
    const start = random(chunkCount - changedChunks + 1) * chunkBytes;
    const end = start + changedChunks * chunkBytes;
    for (let offset = start; offset < end; offset += writeBytes) write(offset, Math.min(writeBytes, end - offset), scratch);
  }
  san.flush();
  return changedChunks;
}
