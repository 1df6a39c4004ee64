// CSI SnapshotMetadata (changed-block tracking): the allocated ranges of a snapshot and the ranges that changed
// between two snapshots of one volume, streamed as variable-length ranges. Both cost O(changed) in the engine.
import { status } from "@grpc/grpc-js";
import type { SanClient } from "../san/san-client.ts";
import type { ByteRange } from "../storage/types.ts";
import { CsiError, invalidArgument } from "./errors.ts";
import { checkCsiString, parseSnapshotId, type SnapshotRef } from "./ids.ts";
import { notFound } from "./messages.ts";
import { stream, type CsiMethods } from "./rpc.ts";
import type { GetMetadataAllocatedRequest, GetMetadataDeltaRequest } from "./requests.ts";

/** Ranges per streamed message when the caller leaves max_results at 0 (about 200 KB a message). */
export const DEFAULT_RANGES_PER_MESSAGE = 8192;

/** The ranges at or after `startingOffset`, the one that straddles it cut to begin there. */
export function rangesFrom(ranges: readonly ByteRange[], startingOffset: number): ByteRange[] {
  const result: ByteRange[] = [];
  for (const range of ranges) {
    const end = range.offset + range.length;
    if (end <= startingOffset) continue;
    const offset = Math.max(range.offset, startingOffset);
    result.push({ offset, length: end - offset });
  }
  return result;
}

/** The response messages: `perMessage` ranges each, and one (empty) message when nothing is allocated or changed. */
export function metadataMessages(ranges: readonly ByteRange[], volumeCapacityBytes: number, perMessage: number): Record<string, unknown>[] {
  const messages: Record<string, unknown>[] = [];
  for (let start = 0; start === 0 || start < ranges.length; start += perMessage) {
    messages.push({
      blockMetadataType: "VARIABLE_LENGTH",
      volumeCapacityBytes,
      blockMetadata: ranges.slice(start, start + perMessage).map((r) => ({ byteOffset: r.offset, sizeBytes: r.length })),
    });
  }
  return messages;
}

/** Checks starting_offset and max_results, the fields both RPCs share. */
function checkPaging(request: { startingOffset: number; maxResults: number }): void {
  if (!Number.isSafeInteger(request.startingOffset) || request.startingOffset < 0) {
    throw new CsiError(status.OUT_OF_RANGE, `starting_offset must be a byte offset of 0 or more; got ${request.startingOffset}.`);
  }
  if (request.maxResults < 0) throw invalidArgument(`max_results must not be negative; got ${request.maxResults}.`);
}

function checkOffset(startingOffset: number, sizeBytes: number, snapshotId: string): void {
  if (startingOffset > sizeBytes) {
    throw new CsiError(status.OUT_OF_RANGE, `starting_offset ${startingOffset} is past the end of snapshot ${snapshotId}, which is ${sizeBytes} bytes.`);
  }
}

/** The snapshot an id names; NOT_FOUND for an id esan never issues. */
function resolve(id: string): SnapshotRef {
  const ref = parseSnapshotId(id);
  if (!ref) throw notFound("snapshot", id);
  return ref;
}

/** The SnapshotMetadata service's handlers. */
export function snapshotMetadataService(san: SanClient): CsiMethods {
  return {
    GetMetadataAllocated: stream<GetMetadataAllocatedRequest>({
      validate: (r) => {
        checkCsiString("snapshot_id", r.snapshotId);
        checkPaging(r);
      },
      handle: async function* (r) {
        const ref = resolve(r.snapshotId);
        if (ref.tier === "durable") {
          throw new CsiError(
            status.FAILED_PRECONDITION,
            `Allocation metadata is served for instant snapshots; ${r.snapshotId} is a disk snapshot in the durable tier. Ask for the delta between two disk snapshots of its family instead.`,
          );
        }
        const snapshot = await san.getSnapshot(ref.id);
        checkOffset(r.startingOffset, snapshot.sizeBytes, ref.id);
        const ranges = rangesFrom(await san.allocatedRanges(ref.id), r.startingOffset);
        yield* metadataMessages(ranges, snapshot.sizeBytes, r.maxResults || DEFAULT_RANGES_PER_MESSAGE);
      },
    }),

    GetMetadataDelta: stream<GetMetadataDeltaRequest>({
      validate: (r) => {
        checkCsiString("base_snapshot_id", r.baseSnapshotId);
        checkCsiString("target_snapshot_id", r.targetSnapshotId);
        checkPaging(r);
      },
      handle: async function* (r) {
        const base = resolve(r.baseSnapshotId);
        const target = resolve(r.targetSnapshotId);
        let sizeBytes: number;
        let ranges: ByteRange[];
        if (base.tier === "instant" && target.tier === "instant") {
          const [baseSnapshot, targetSnapshot] = await Promise.all([san.getSnapshot(base.id), san.getSnapshot(target.id)]);
          if (baseSnapshot.sourceUniqueId !== targetSnapshot.sourceUniqueId) {
            throw invalidArgument(`Snapshots ${base.id} and ${target.id} are not of the same volume, so they have no delta; name two snapshots of one volume.`);
          }
          sizeBytes = targetSnapshot.sizeBytes;
          checkOffset(r.startingOffset, sizeBytes, target.id);
          ranges = (await san.diff(base.id, target.id)).ranges;
        } else if (base.tier === "durable" && target.tier === "durable") {
          const targetDisk = await san.getDiskSnapshot(target.name);
          sizeBytes = targetDisk.sizeBytes;
          checkOffset(r.startingOffset, sizeBytes, r.targetSnapshotId);
          ranges = (await san.diffDiskSnapshots(base.name, target.name)).ranges;
        } else {
          throw invalidArgument(
            `Snapshots ${r.baseSnapshotId} and ${r.targetSnapshotId} are in different tiers (instant and durable); a delta is computed between two snapshots of one tier.`,
          );
        }
        yield* metadataMessages(rangesFrom(ranges, r.startingOffset), sizeBytes, r.maxResults || DEFAULT_RANGES_PER_MESSAGE);
      },
    }),
  };
}
