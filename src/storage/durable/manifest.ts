// Member manifests of the durable tier, chunk runs, and the index that resolves a chunk through a family chain.

/** A run of chunk indexes [first, first + count). */
export type ChunkRun = [first: number, count: number];

/** One segment object: the listed chunk runs, stored back to back in run order. */
export interface SegmentEntry {
  key: string;
  runs: ChunkRun[];
}

/**
 * What a member holds, written to the store as its last object: the member exists in the store only once its
 * manifest does. A full member (no previous) lists every mapped chunk; an incremental one lists the chunks that
 * changed since its previous member, with chunks that became unmapped in `zeroRuns`.
 */
export interface MemberManifest {
  format: 1;
  name: string;
  memberId: string;
  sourceResourceId: string;
  sourceUniqueId: string;
  previousMemberId: string | null;
  sizeBytes: number;
  sectorSize: number;
  chunkSizeBytes: number;
  createdAt: string;
  segments: SegmentEntry[];
  zeroRuns: ChunkRun[];
}

/** Sorted chunk indexes to runs. */
export function toRuns(chunks: readonly number[]): ChunkRun[] {
  const runs: ChunkRun[] = [];
  for (const chunk of chunks) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === chunk) last[1]++;
    else runs.push([chunk, 1]);
  }
  return runs;
}

/** Runs back to chunk indexes. */
export function fromRuns(runs: readonly ChunkRun[]): number[] {
  const chunks: number[] = [];
  for (const [first, count] of runs) for (let i = 0; i < count; i++) chunks.push(first + i);
  return chunks;
}

/** Where the bytes of one chunk live: a slot of a segment object, or nowhere (the chunk reads as zeroes). */
export type ChunkLocation = { key: string; slot: number } | "zero";

/** Object keys of a member: segments, and manifests by generation (the highest generation is current). */
export const memberKeys = {
  prefix: (family: string, memberId: string): string => `families/${family}/${memberId}/`,
  segment: (family: string, memberId: string, generation: number, index: number): string =>
    `families/${family}/${memberId}/seg-g${generation}-${String(index).padStart(6, "0")}`,
  manifest: (family: string, memberId: string, generation: number): string =>
    `families/${family}/${memberId}/manifest-g${String(generation).padStart(4, "0")}.json`,
};

/** Chunks a member changed relative to its previous member (stored or zeroed). */
export function changedChunksOf(manifest: MemberManifest): number[] {
  const chunks = [...fromRuns(manifest.zeroRuns)];
  for (const segment of manifest.segments) chunks.push(...fromRuns(segment.runs));
  return chunks.sort((a, b) => a - b);
}
