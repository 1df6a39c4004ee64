// Resolves a chunk through a family chain by binary search over each member's chunk runs, newest member first.
import type { ChunkLocation, ChunkRun, MemberManifest } from "./manifest.ts";

/** One member's runs sorted by first chunk; `keys[i]` null marks a run of chunks that read as zeroes. */
interface MemberRuns {
  firsts: number[];
  counts: number[];
  keys: (string | null)[];
  slots: number[];
}

/**
 * The chunk index of a restore. Building it costs O(runs log runs) and a lookup O(members × log runs), so a
 * restored volume can serve its first read without first listing every chunk of a large disk snapshot.
 */
export class ChainIndex {
  /** Newest member first: the first member that covers a chunk decides where it lives. */
  readonly #members: MemberRuns[];
  /** Union of the stored runs of every member, clipped to the image: the hydration job's work, in chunk order. */
  readonly coverage: ChunkRun[];
  /** Chunks in `coverage`. */
  readonly coveredChunks: number;

  /** `chain` is oldest (the full member) first; chunks at or past `chunkLimit` are outside the image. */
  constructor(chain: readonly MemberManifest[], chunkLimit: number) {
    this.#members = [...chain].reverse().map(runsOf);
    const stored: ChunkRun[] = [];
    for (const member of this.#members) {
      member.firsts.forEach((first, i) => {
        if (member.keys[i] !== null) stored.push([first, member.counts[i]!]);
      });
    }
    this.coverage = union(stored, chunkLimit);
    this.coveredChunks = this.coverage.reduce((sum, [, count]) => sum + count, 0);
  }

  /** Where a chunk's bytes are, "zero" when a member zeroed it, or undefined when no member holds it (zeroes too). */
  locate(chunk: number): ChunkLocation | undefined {
    for (const member of this.#members) {
      const i = lastAtOrBefore(member.firsts, chunk);
      if (i < 0 || chunk >= member.firsts[i]! + member.counts[i]!) continue;
      const key = member.keys[i]!;
      return key === null ? "zero" : { key, slot: member.slots[i]! + (chunk - member.firsts[i]!) };
    }
    return undefined;
  }

  /** The `count` chunks of `coverage` starting at position `from` of the sequence. */
  coveredSlice(from: number, count: number): number[] {
    const out: number[] = [];
    let skip = from;
    for (const [first, length] of this.coverage) {
      if (skip >= length) {
        skip -= length;
        continue;
      }
      for (let chunk = first + skip; chunk < first + length && out.length < count; chunk++) out.push(chunk);
      skip = 0;
      if (out.length === count) break;
    }
    return out;
  }
}

function runsOf(manifest: MemberManifest): MemberRuns {
  const entries: { first: number; count: number; key: string | null; slot: number }[] = [];
  for (const segment of manifest.segments) {
    let slot = 0;
    for (const [first, count] of segment.runs) {
      entries.push({ first, count, key: segment.key, slot });
      slot += count;
    }
  }
  for (const [first, count] of manifest.zeroRuns) entries.push({ first, count, key: null, slot: 0 });
  entries.sort((a, b) => a.first - b.first);
  return {
    firsts: entries.map((e) => e.first),
    counts: entries.map((e) => e.count),
    keys: entries.map((e) => e.key),
    slots: entries.map((e) => e.slot),
  };
}

/** Index of the last element ≤ value in an ascending array, or −1. */
function lastAtOrBefore(sorted: number[], value: number): number {
  let low = 0;
  let high = sorted.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! <= value) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}

/** Merges overlapping or touching runs and clips them below `limit`. */
function union(runs: ChunkRun[], limit: number): ChunkRun[] {
  runs.sort((a, b) => a[0] - b[0]);
  const out: ChunkRun[] = [];
  for (const [first, count] of runs) {
    const end = Math.min(first + count, limit);
    if (end <= first) continue;
    const last = out[out.length - 1];
    if (last && first <= last[0] + last[1]) last[1] = Math.max(last[1], end - last[0]);
    else out.push([first, end - first]);
  }
  return out;
}
