// Part 2 of `npm run bench:durable`: restores from disk snapshots, their time to first read and their hydration.

import { checkRead, type DurableBenchConfig, nowUs, progress, type Span, timeAsync } from "./durable-common.ts";
import type { ExportedMember, WrittenVolume } from "./durable-export.ts";
import { type RandomInt } from "./rng.ts";
import { type LatencySummary, summarizeLatency } from "./stats.ts";
import { timeMs, VOLUME_GROUP } from "./storage-common.ts";
import { formatBytes, formatMs } from "./table.ts";
import type { San } from "../../src/storage/san.ts";

/** A disk snapshot to restore, and the volume it was exported from (for its size and its data pattern). */
export interface RestoreSubject {
  label: string;
  volume: WrittenVolume;
  member: ExportedMember;
}

/** Time to first read of one disk snapshot, over all its restores. */
export interface FirstReadResult {
  subject: RestoreSubject;
  /** `createVolume` with the disk snapshot as source. */
  create: LatencySummary;
  /** The first `readAsync` of the new volume. */
  read: LatencySummary;
  /** Both together: from asking for the volume to holding the first bytes. */
  total: LatencySummary;
  /** The slowest restore's time to first read. */
  slowestMs: number;
  /** Hydration's completionPercent right after each first read (how much was local already). */
  percentAtRead: number[];
  /** Each restore from `createVolume` to the first bytes, for `--profile`. */
  spans: Span[];
}

/** One full hydration: from `createVolume` until `waitForHydration` resolves. */
export interface HydrationResult {
  subject: RestoreSubject;
  ms: number;
  span: Span;
  /** Bytes of the chunks that hold data in the disk snapshot: what hydration copies. */
  dataBytes: number;
  verifiedBlocks: number;
}

const readBlockBytes = 4096;

/** A random 4 KiB-aligned offset in the middle half of the volume, away from where hydration starts. */
function middleOffset(sizeBytes: number, random: RandomInt): number {
  const blocks = sizeBytes / readBlockBytes;
  return (Math.floor(blocks / 4) + random(Math.floor(blocks / 2))) * readBlockBytes;
}

/** Restores one disk snapshot, reads once from the middle, checks the bytes, then deletes the volume again. */
async function firstReadSample(san: San, subject: RestoreSubject, cfg: DurableBenchConfig, random: RandomInt, name: string): Promise<{ createMs: number; readMs: number; percent: number; span: Span }> {
  let volumeId = "";
  const startUs = nowUs();
  const createMs = timeMs(() => {
    volumeId = san.createVolume({ volumeGroup: VOLUME_GROUP, name, sizeBytes: subject.volume.sizeBytes, source: { kind: "diskSnapshot", id: subject.member.name } }).id;
  });
  const offset = middleOffset(subject.volume.sizeBytes, random);
  const { ms: readMs, span: readSpan, value: data } = await timeAsync(() => san.readAsync(volumeId, offset, cfg.firstReadBytes));
  const percent = san.getVolume(volumeId).hydration?.completionPercent ?? 100;
  checkRead(`${volumeId} at ${offset}`, data, subject.volume.pattern.expected(subject.member.generations, offset, cfg.firstReadBytes));
  // Untimed: stop the hydration and let its in-flight store reads drain, so they do not slow the next sample.
  const finished = san.waitForHydration(volumeId);
  san.deleteVolume(volumeId);
  await finished;
  return { createMs, readMs, percent, span: { startUs, endUs: readSpan.endUs } };
}

/** Restores each disk snapshot `firstReadIterations` times, rotating the order so none always goes first. */
export async function measureFirstReads(san: San, subjects: readonly RestoreSubject[], cfg: DurableBenchConfig, random: RandomInt): Promise<FirstReadResult[]> {
  const samples = subjects.map(() => ({ create: [] as number[], read: [] as number[], total: [] as number[], percent: [] as number[], spans: [] as Span[] }));
  for (let i = 0; i < cfg.firstReadIterations; i++) {
    for (let k = 0; k < subjects.length; k++) {
      const index = (i + k) % subjects.length;
      const subject = subjects[index]!;
      const sample = await firstReadSample(san, subject, cfg, random, `first-read-${index}-${i}`);
      const into = samples[index]!;
      into.create.push(sample.createMs);
      into.read.push(sample.readMs);
      into.total.push(sample.createMs + sample.readMs);
      into.percent.push(sample.percent);
      into.spans.push(sample.span);
    }
  }
  return subjects.map((subject, i) => {
    const s = samples[i]!;
    const result = { subject, create: summarizeLatency(s.create), read: summarizeLatency(s.read), total: summarizeLatency(s.total), slowestMs: Math.max(...s.total), percentAtRead: s.percent, spans: s.spans };
    progress(`first read of ${subject.label}: p50 ${formatMs(result.total.p50Ms)} (create ${formatMs(result.create.p50Ms)}, read ${formatMs(result.read.p50Ms)})`);
    return result;
  });
}

/** Restores the disk snapshot once more and waits for hydration to complete, then checks random blocks. */
export async function measureHydration(san: San, subject: RestoreSubject, cfg: DurableBenchConfig, random: RandomInt): Promise<HydrationResult> {
  let volumeId = "";
  const { ms, span } = await timeAsync(async () => {
    volumeId = san.createVolume({ volumeGroup: VOLUME_GROUP, name: "hydrated", sizeBytes: subject.volume.sizeBytes, source: { kind: "diskSnapshot", id: subject.member.name } }).id;
    await san.waitForHydration(volumeId);
  });
  const hydration = san.getVolume(volumeId).hydration;
  if (hydration?.state !== "complete" || hydration.completionPercent !== 100) {
    throw new Error(`Hydration of ${volumeId} resolved in state ${hydration?.state ?? "none"} at ${hydration?.completionPercent ?? "?"}%, not complete at 100%.`);
  }
  // The sync read refuses a hydrating volume, so these reads also show the volume no longer depends on the store.
  for (let i = 0; i < cfg.verifyBlocks; i++) {
    const offset = random(subject.volume.sizeBytes / readBlockBytes) * readBlockBytes;
    checkRead(`${volumeId} at ${offset} after hydration`, san.read(volumeId, offset, readBlockBytes), subject.volume.pattern.expected(subject.member.generations, offset, readBlockBytes));
  }
  const chunkBytes = subject.volume.pattern.chunkSizeBytes;
  const dataBytes = subject.member.generations.reduce((sum, generation) => sum + (generation === 0 ? 0 : chunkBytes), 0);
  progress(`hydrated ${formatBytes(dataBytes)} of ${subject.label} in ${formatMs(ms)}`);
  return { subject, ms, span, dataBytes, verifiedBlocks: cfg.verifyBlocks };
}
