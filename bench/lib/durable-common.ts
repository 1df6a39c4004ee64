// Shared pieces of `npm run bench:durable`: the run configuration, progress lines, async timing, and the data
// pattern the bench writes, which lets every read of a restored volume be checked byte for byte.

import crypto from "node:crypto";
import { performance } from "node:perf_hooks";

import { GiB, KiB, MiB } from "./storage-common.ts";

/** What one run does; `--quick` shrinks sizes and repetitions so a smoke run takes seconds. */
export interface DurableBenchConfig {
  quick: boolean;
  /** Append the section to BENCHMARKS.md (full runs only). */
  append: boolean;
  /** Run under V8's CPU profiler and print where the main thread spent each phase (never appended). */
  profile: boolean;
  /** SAN capacity (default 32 GiB): room for the written volume, its copy-on-write changes and one restore. */
  capacityBytes: number;
  /** The volume written in full and exported (default 4 GiB). */
  largeBytes: number;
  /** The small volume whose restore is compared with the large one's (default 64 MiB). */
  smallBytes: number;
  /** Size of each sequential write that fills a volume (default 1 MiB). */
  fillWriteBytes: number;
  /** Share of the large volume changed before each incremental export (default 0.01). */
  changedFraction: number;
  /** Incremental exports per change pattern; the table shows the median (default 3). */
  incrementalRepetitions: number;
  /** Restores per disk snapshot for time to first read; the table shows p50 and the maximum (default 7). */
  firstReadIterations: number;
  /** Size of the first read of a restored volume (default 4 KiB). */
  firstReadBytes: number;
  /** 4 KiB blocks of the hydrated volume checked against the written data afterwards (default 256). */
  verifyBlocks: number;
}

/** Turns the command-line flags into a config; without flags, the full run whose figures get appended. */
export function parseDurableBenchConfig(argv: readonly string[]): DurableBenchConfig {
  const known = ["--quick", "--no-append", "--profile"];
  for (const arg of argv) if (!known.includes(arg)) throw new Error(`Unknown flag "${arg}"; use ${known.join(", ")}.`);
  const quick = argv.includes("--quick");
  const profile = argv.includes("--profile");
  return {
    quick,
    append: !quick && !profile && !argv.includes("--no-append"),
    profile,
    capacityBytes: 32 * GiB,
    largeBytes: quick ? 256 * MiB : 4 * GiB,
    smallBytes: quick ? 16 * MiB : 64 * MiB,
    fillWriteBytes: 1 * MiB,
    changedFraction: 0.01,
    incrementalRepetitions: quick ? 1 : 3,
    firstReadIterations: quick ? 3 : 7,
    firstReadBytes: 4 * KiB,
    verifyBlocks: quick ? 32 : 256,
  };
}

/** A progress line on stderr, so stdout holds only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench:durable] ${message}\n`);
}

/** Microseconds on the monotonic clock, which is also the clock of V8's CPU profiles (for `--profile` windows). */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A span of the run on the monotonic clock, in microseconds. */
export interface Span {
  startUs: number;
  endUs: number;
}

/** Awaits `fn` and returns its duration in milliseconds, its span and its result. */
export async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; span: Span; value: T }> {
  const startUs = nowUs();
  const start = performance.now();
  const value = await fn();
  const ms = performance.now() - start;
  return { ms, span: { startUs, endUs: nowUs() }, value };
}

/** MiB per second for `bytes` moved in `ms`. */
export function mibPerSecond(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

/** Block size of the stamps in the data pattern. */
const STAMP_BLOCK_BYTES = 4 * KiB;

/**
 * The content of a volume, as generations per chunk: generation g of a 4 KiB block at byte `offset` is 4 KiB of a
 * fixed random buffer whose first 12 bytes are replaced by `offset` and `g`. Every block differs from every other
 * block and from zeroes, so no layer can take a shortcut, and a read of any block can be checked exactly.
 */
export class DataPattern {
  readonly chunkSizeBytes: number;
  /** Current generation of each chunk of the volume (0: never written, reads as zeroes). */
  readonly generations: Uint32Array;
  readonly #base: Buffer;

  constructor(sizeBytes: number, chunkSizeBytes: number) {
    this.chunkSizeBytes = chunkSizeBytes;
    this.generations = new Uint32Array(Math.ceil(sizeBytes / chunkSizeBytes));
    this.#base = crypto.randomFillSync(Buffer.alloc(1 * MiB));
  }

  /** Fills `out` with generation `generation` of the bytes at `offset` (both 4 KiB aligned). */
  fill(out: Buffer, offset: number, generation: number): Buffer {
    for (let at = 0; at < out.length; at += STAMP_BLOCK_BYTES) {
      const absolute = offset + at;
      const from = absolute % this.#base.length;
      this.#base.copy(out, at, from, from + Math.min(STAMP_BLOCK_BYTES, out.length - at));
      out.writeDoubleLE(absolute, at);
      out.writeUInt32LE(generation, at + 8);
    }
    return out;
  }

  /** Records that the chunks covering [offset, offset + length) now hold `generation`. */
  record(offset: number, length: number, generation: number): void {
    const first = Math.floor(offset / this.chunkSizeBytes);
    const last = Math.ceil((offset + length) / this.chunkSizeBytes);
    this.generations.fill(generation, first, last);
  }

  /** The bytes a 4 KiB-aligned read of a state with these `generations` must return. */
  expected(generations: Uint32Array, offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let at = 0; at < length; at += STAMP_BLOCK_BYTES) {
      const generation = generations[Math.floor((offset + at) / this.chunkSizeBytes)] ?? 0;
      if (generation !== 0) this.fill(out.subarray(at, Math.min(length, at + STAMP_BLOCK_BYTES)), offset + at, generation);
    }
    return out;
  }
}

/** Fails with a sentence naming the read when `actual` is not what the written data says it must be. */
export function checkRead(what: string, actual: Buffer, expected: Buffer): void {
  if (!actual.equals(expected)) {
    const at = actual.findIndex((byte, i) => byte !== expected[i]);
    throw new Error(`The bench read wrong data from ${what}: first difference at byte ${at} of ${expected.length}; the durable tier returned data that was not written.`);
  }
}
