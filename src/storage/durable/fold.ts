// Deleting a family member without breaking the others: its delta moves into the next member.
import { type ChunkRun, type MemberManifest, fromRuns, memberKeys, toRuns } from "./manifest.ts";
import type { DiskSnapshotRow, DurableRows } from "./records.ts";
import type { DurableStore } from "./store.ts";
import { SEGMENT_CHUNKS } from "./export-job.ts";

/**
 * Gives `successor` every chunk `deleted` changed that the successor did not change again, as new segment objects
 * and a new manifest generation, and links it to `deleted`'s previous member. Objects are written before the
 * manifest that points at them, and nothing of `deleted` is removed here, so a crash leaves either the old
 * manifest or the new one, each complete.
 */
export async function foldIntoSuccessor(
  rows: DurableRows,
  fromStore: DurableStore,
  toStore: DurableStore,
  deleted: DiskSnapshotRow,
  successor: DiskSnapshotRow,
  deletedManifest: MemberManifest,
  successorManifest: MemberManifest,
): Promise<void> {
  const overridden = new Set<number>(fromRuns(successorManifest.zeroRuns));
  for (const segment of successorManifest.segments) for (const chunk of fromRuns(segment.runs)) overridden.add(chunk);

  const generation = successor.manifest_gen + 1;
  const chunkSize = deleted.chunk_size;
  const carried: { chunk: number; key: string; slot: number }[] = [];
  for (const segment of deletedManifest.segments) {
    fromRuns(segment.runs).forEach((chunk, slot) => {
      if (!overridden.has(chunk)) carried.push({ chunk, key: segment.key, slot });
    });
  }
  const newSegments: MemberManifest["segments"] = [];
  for (let index = 0; index * SEGMENT_CHUNKS < carried.length; index++) {
    const part = carried.slice(index * SEGMENT_CHUNKS, (index + 1) * SEGMENT_CHUNKS);
    const buffers: Buffer[] = [];
    for (const { key, slot } of part) buffers.push(await fromStore.get(key, { offset: slot * chunkSize, length: chunkSize }));
    const key = memberKeys.segment(successor.family, successor.member_id, generation, index);
    await toStore.put(key, Buffer.concat(buffers));
    newSegments.push({ key, runs: toRuns(part.map((c) => c.chunk)) });
  }
  const carriedZeroes: ChunkRun[] = toRuns(fromRuns(deletedManifest.zeroRuns).filter((chunk) => !overridden.has(chunk)));
  const manifest: MemberManifest = {
    ...successorManifest,
    previousMemberId: deleted.previous_member,
    segments: [...successorManifest.segments, ...newSegments],
    // A full member has no earlier state for zeroes to differ from: unlisted chunks read as zeroes anyway.
    zeroRuns: deleted.previous_member === null ? successorManifest.zeroRuns : [...successorManifest.zeroRuns, ...carriedZeroes],
  };
  await toStore.put(memberKeys.manifest(successor.family, successor.member_id, generation), Buffer.from(JSON.stringify(manifest)));
  rows.update(successor.name, {
    previous_member: deleted.previous_member,
    manifest_gen: generation,
    used_bytes: successor.used_bytes + carried.length * chunkSize,
  });
  await toStore.delete(memberKeys.manifest(successor.family, successor.member_id, successor.manifest_gen));
}
