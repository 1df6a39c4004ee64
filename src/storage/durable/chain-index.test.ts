import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChainIndex } from "./chain-index.ts";
import { type ChunkLocation, type MemberManifest, fromRuns, toRuns } from "./manifest.ts";

/** The obvious index: every chunk in a Map, later members overriding earlier ones. The reference for ChainIndex. */
function referenceIndex(chain: MemberManifest[]): Map<number, ChunkLocation> {
  const index = new Map<number, ChunkLocation>();
  for (const manifest of chain) {
    for (const chunk of fromRuns(manifest.zeroRuns)) index.set(chunk, "zero");
    for (const segment of manifest.segments) {
      let slot = 0;
      for (const chunk of fromRuns(segment.runs)) index.set(chunk, { key: segment.key, slot: slot++ });
    }
  }
  return index;
}

/** A member that stores `stored` (in segments of up to 4 chunks) and zeroes `zeroed`. */
function member(id: string, stored: number[], zeroed: number[]): MemberManifest {
  const segments = [];
  for (let i = 0; i * 4 < stored.length; i++) segments.push({ key: `${id}/seg-${i}`, runs: toRuns(stored.slice(i * 4, i * 4 + 4)) });
  return {
    format: 1,
    name: id,
    memberId: id,
    sourceResourceId: "vg/v",
    sourceUniqueId: "f",
    previousMemberId: null,
    sizeBytes: 1 << 20,
    sectorSize: 512,
    chunkSizeBytes: 4096,
    createdAt: "2026-01-01T00:00:00.000Z",
    segments,
    zeroRuns: toRuns(zeroed),
  };
}

const memberArb = fc
  .uniqueArray(fc.nat(200), { maxLength: 60 })
  .chain((chunks) => fc.tuple(fc.constant(chunks.sort((a, b) => a - b)), fc.array(fc.boolean(), { minLength: chunks.length, maxLength: chunks.length })));

describe("ChainIndex", () => {
  it("locates every chunk as the per-chunk reference does, and covers exactly the stored chunks", () => {
    fc.assert(
      fc.property(fc.array(memberArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 220 }), (members, limit) => {
        const chain = members.map(([chunks, zeroFlags], m) =>
          member(`m${m}`, chunks.filter((_, i) => !zeroFlags[i]), chunks.filter((_, i) => zeroFlags[i])),
        );
        const reference = referenceIndex(chain);
        const index = new ChainIndex(chain, limit);
        for (let chunk = 0; chunk < 210; chunk++) expect(index.locate(chunk)).toEqual(reference.get(chunk));
        const storedAnywhere = new Set<number>();
        for (const manifest of chain) for (const segment of manifest.segments) for (const c of fromRuns(segment.runs)) if (c < limit) storedAnywhere.add(c);
        const covered = index.coveredSlice(0, 1000);
        expect(covered).toEqual([...storedAnywhere].sort((a, b) => a - b));
        expect(index.coveredChunks).toBe(covered.length);
        if (covered.length > 3) expect(index.coveredSlice(2, 2)).toEqual(covered.slice(2, 4));
      }),
      { numRuns: 300 },
    );
  });
});
