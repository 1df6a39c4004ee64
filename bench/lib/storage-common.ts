// Shared pieces of `npm run bench:storage`: units, the iteration config, timing and SAN setup.

import crypto from "node:crypto";
import { performance } from "node:perf_hooks";

import { San } from "../../src/storage/san.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

export const VOLUME_GROUP = "bench";
/** Limits high enough that the latency loops never hit the per-volume snapshot count or rate cap. */
export const BENCH_LIMITS = { maxSnapshotsPerVolume: 100_000, snapshotRateCount: 100_000 };
/** The sections of the bench, in the order they run; `--only=` takes a comma-separated subset. */
export const SECTION_NAMES = ["snapshot", "diff", "write"] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** Iteration counts; `--quick` shrinks them so a smoke run takes seconds. */
export interface BenchConfig {
  quick: boolean;
  append: boolean;
  sections: Set<SectionName>;
  /** Timed iterations of the snapshot/clone loop per volume size (after `warmupIterations`). */
  snapshotIterations: number;
  warmupIterations: number;
  /** 64 KiB writes spread over each latency volume so its map is non-trivial. */
  spreadWrites: number;
  diffVolumeBytes: number;
  /** Share of the diff volume's chunks written before the base snapshot. */
  diffFillFraction: number;
  diffRepetitions: number;
  /** Iterations of the snapshot/clone loop on the filled diff volume. */
  mappedIterations: number;
  sequentialBytes: number;
  sequentialWriteBytes: number;
  randomWrites: number;
  randomWriteBytes: number;
}

/** Runs `fn` and returns its duration in milliseconds. */
export function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** A progress line on stderr, so stdout holds only the tables. */
export function progress(message: string): void {
  process.stderr.write(`[bench:storage] ${message}\n`);
}

/** A new SAN in `dir` with the bench limits and the bench volume group. */
export function createSan(dir: string, capacityBytes: number): San {
  const san = San.create(dir, { capacityBytes, limits: BENCH_LIMITS });
  san.createVolumeGroup(VOLUME_GROUP);
  return san;
}

/** Random bytes, so no layer can take a shortcut for zeroes. */
export function randomPayload(bytes: number): Buffer {
  return crypto.randomFillSync(Buffer.alloc(bytes));
}
