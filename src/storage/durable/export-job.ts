// The background export of one disk snapshot: segment by segment into the store, resumable from persisted progress.
import { type ChunkRun, type MemberManifest, type SegmentEntry, memberKeys, toRuns } from "./manifest.ts";
import type { DiskSnapshotRow, DurableHost, DurableRows } from "./records.ts";
import type { DurableStore } from "./store.ts";

/** Chunks per segment object: 4 MiB with the default 64 KiB chunks. */
export const SEGMENT_CHUNKS = 64;

/**
 * Copies a member's chunks into the store and then writes its manifest, which is the moment the member exists in
 * the store. The chunk list is recomputed from the two pins on every (re)start, so it is the same list each time,
 * and segments before `done` are never rewritten: an export killed at any point resumes where it stopped.
 */
export async function runExport(host: DurableHost, rows: DurableRows, store: DurableStore, name: string, stopped: () => boolean): Promise<void> {
  const row = rows.get(name);
  if (!row || row.state !== "exporting" || row.pin_id === null) return;
  const chunks = host.changedChunks(row.pin_id, row.base_pin_id);
  const chunkSize = row.chunk_size;
  for (let index = rows.segments(name).length; index * SEGMENT_CHUNKS < chunks.length; index++) {
    if (stopped()) return;
    const slice = chunks.slice(index * SEGMENT_CHUNKS, (index + 1) * SEGMENT_CHUNKS);
    const data = host.readChunks(row.pin_id, slice);
    const stored: number[] = [];
    const zeroes: number[] = [];
    const buffers: Buffer[] = [];
    slice.forEach((chunk, i) => {
      const bytes = data[i];
      if (bytes === null || bytes === undefined) {
        zeroes.push(chunk);
        return;
      }
      stored.push(chunk);
      buffers.push(bytes.byteLength === chunkSize ? bytes : Buffer.concat([bytes, Buffer.alloc(chunkSize - bytes.byteLength)]));
    });
    const key = stored.length > 0 ? memberKeys.segment(row.family, row.member_id, 1, index) : null;
    if (key !== null) await store.put(key, Buffer.concat(buffers));
    if (stopped()) return;
    rows.addSegment(name, index, key, JSON.stringify(toRuns(stored)), JSON.stringify(toRuns(zeroes)), Math.min(chunks.length, (index + 1) * SEGMENT_CHUNKS));
  }
  const manifest = manifestOf(row, rows);
  await store.put(memberKeys.manifest(row.family, row.member_id, 1), Buffer.from(JSON.stringify(manifest)));
  if (stopped()) return;
  finishExport(host, rows, row, manifest);
}

/** The manifest of an export from its recorded segments. */
function manifestOf(row: DiskSnapshotRow, rows: DurableRows): MemberManifest {
  const segments: SegmentEntry[] = [];
  const zeroRuns: ChunkRun[] = [];
  for (const segment of rows.segments(row.name)) {
    if (segment.object_key !== null) segments.push({ key: segment.object_key, runs: JSON.parse(segment.ranges) as ChunkRun[] });
    zeroRuns.push(...(JSON.parse(segment.zeroes) as ChunkRun[]));
  }
  return {
    format: 1,
    name: row.name,
    memberId: row.member_id,
    sourceResourceId: row.source_resource_id,
    sourceUniqueId: row.family,
    previousMemberId: row.previous_member,
    sizeBytes: row.size_bytes,
    sectorSize: row.sector_size,
    chunkSizeBytes: row.chunk_size,
    createdAt: new Date(row.created_at).toISOString(),
    segments,
    zeroRuns,
  };
}

/**
 * Marks the member ready and moves the family's base: the previous member's pin is no longer needed. The rows
 * change in the same commit that releases the pin, so a crash leaves no pin unreferenced and no row pointing at a
 * released pin.
 */
function finishExport(host: DurableHost, rows: DurableRows, row: DiskSnapshotRow, manifest: MemberManifest): void {
  const storedChunks = manifest.segments.reduce((sum, s) => sum + s.runs.reduce((n, [, count]) => n + count, 0), 0);
  const basePin = row.base_pin_id;
  const markReady = (): void => {
    rows.update(row.name, { state: "ready", done_chunks: row.total_chunks, used_bytes: storedChunks * row.chunk_size, base_pin_id: null, manifest_gen: 1 });
    for (const other of rows.family(row.family)) {
      if (basePin !== null && other.pin_id === basePin) rows.update(other.name, { pin_id: null });
    }
  };
  if (basePin === null) rows.transaction(markReady);
  else host.unpin(basePin, markReady);
}
