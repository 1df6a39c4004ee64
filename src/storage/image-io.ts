// Byte-level I/O on one image's map: reads, copy-on-write writes, zeroing and unmapping, and the capacity plan for each.
import {
  type ImageMap,
  isExclusive,
  leafIndex,
  lookup,
  writableLeaf,
} from "./chunk-map.ts";
import type { ExtentFile, FileIo } from "./extent-file.ts";
import type { PageStore } from "./page-store.ts";

/** What image I/O works with: the page store, the extents file and the chunk size. */
export interface IoContext {
  store: PageStore;
  file: ExtentFile;
  chunkSizeBytes: number;
}

/** Calls `piece(chunk, offsetInChunk, length, offsetInRange)` for each chunk-sized piece of a byte range. */
export function forEachPiece(
  chunkSizeBytes: number,
  offset: number,
  length: number,
  piece: (chunk: number, offsetInChunk: number, pieceLength: number, offsetInRange: number) => void,
): void {
  let done = 0;
  while (done < length) {
    const position = offset + done;
    const chunk = Math.floor(position / chunkSizeBytes);
    const offsetInChunk = position - chunk * chunkSizeBytes;
    const pieceLength = Math.min(chunkSizeBytes - offsetInChunk, length - done);
    piece(chunk, offsetInChunk, pieceLength, done);
    done += pieceLength;
  }
}

/** Reads `length` bytes at `offset`; unmapped chunks read as zeroes. */
export function readImage(ctx: IoContext, map: ImageMap, offset: number, length: number): Buffer {
  // Unzeroed: readImageInto writes every byte.
  const out = Buffer.allocUnsafe(length);
  readImageInto(ctx, map, offset, out);
  return out;
}

/** Fills `out` with the bytes at `offset`: every byte is either read from the file (which zero-fills past its end) or zeroed here. */
export function readImageInto(ctx: IoContext, map: ImageMap, offset: number, out: Uint8Array): void {
  ctx.file.readAll(planRead(ctx, map, offset, out, null));
}

/**
 * `readImageInto` with the file reads on libuv's thread pool. The extents are looked up now and pinned until the
 * data has arrived (see PageStore), so writes and frees meanwhile cannot change what this read returns.
 */
export async function readImageIntoAsync(ctx: IoContext, map: ImageMap, offset: number, out: Uint8Array): Promise<void> {
  const pinned: number[] = [];
  const pieces = planRead(ctx, map, offset, out, pinned);
  try {
    await ctx.file.readAllAsync(pieces);
  } finally {
    for (const extent of pinned) ctx.store.unpinAfterRead(extent);
  }
}

/** The file reads that fill `out`; unmapped chunks are zeroed here. Extents read are pinned into `pinned` when given. */
function planRead(ctx: IoContext, map: ImageMap, offset: number, out: Uint8Array, pinned: number[] | null): FileIo[] {
  const pieces: FileIo[] = [];
  forEachPiece(ctx.chunkSizeBytes, offset, out.byteLength, (chunk, offsetInChunk, pieceLength, at) => {
    const extent = lookup(ctx.store, map, chunk);
    if (extent === 0) {
      out.fill(0, at, at + pieceLength);
      return;
    }
    pieces.push({ position: ctx.file.position(extent, offsetInChunk), buffer: out.subarray(at, at + pieceLength) });
    if (pinned !== null) {
      ctx.store.pinForRead(extent);
      pinned.push(extent);
    }
  });
  return pieces;
}

/** How a zeroing request treats whole chunks: unmap them ("hole") or write real zeroes ("noHole"). */
export type ZeroMode = "hole" | "noHole";

/**
 * New extents a request would allocate: every chunk it writes that this image does not hold alone.
 * `zero` = undefined plans a write; otherwise a zeroing request, which allocates only for partial chunks it must
 * copy (or, with noHole, for every chunk it does not hold alone).
 */
export function extentsNeeded(ctx: IoContext, map: ImageMap, offset: number, length: number, sizeBytes: number, zero?: ZeroMode): number {
  let needed = 0;
  forEachPiece(ctx.chunkSizeBytes, offset, length, (chunk, offsetInChunk, pieceLength) => {
    if (isExclusive(ctx.store, map, chunk)) return;
    if (zero === "hole") {
      const mapped = lookup(ctx.store, map, chunk) !== 0;
      if (!mapped || coversChunk(ctx, chunk, offsetInChunk, pieceLength, sizeBytes)) return;
    }
    needed++;
  });
  return needed;
}

/** True when a piece covers its whole chunk, counting the part of a last chunk beyond the image end as covered. */
function coversChunk(ctx: IoContext, chunk: number, offsetInChunk: number, pieceLength: number, sizeBytes: number): boolean {
  if (offsetInChunk !== 0) return false;
  return pieceLength === ctx.chunkSizeBytes || chunk * ctx.chunkSizeBytes + pieceLength >= sizeBytes;
}

/**
 * Writes `data` at `offset`, copying shared chunks first. The caller has checked range and capacity.
 * Returns how many chunks became mapped.
 */
export function writeImage(ctx: IoContext, map: ImageMap, offset: number, data: Uint8Array): number {
  const batch = newBatch();
  let newlyMapped = 0;
  forEachPiece(ctx.chunkSizeBytes, offset, data.byteLength, (chunk, offsetInChunk, pieceLength, at) => {
    newlyMapped += writePiece(ctx, map, chunk, offsetInChunk, data.subarray(at, at + pieceLength), batch);
  });
  ctx.file.writeAll(batch.pieces);
  return newlyMapped;
}

/**
 * Makes a range read as zeroes: whole chunks are unmapped (or, with noHole, overwritten), partial ones zero-filled.
 * Returns the change in mapped chunks (negative when chunks were unmapped).
 */
export function zeroImage(ctx: IoContext, map: ImageMap, offset: number, length: number, sizeBytes: number, mode: ZeroMode): number {
  const batch = newBatch();
  let mappedChange = 0;
  const zeroes = zeroChunk(ctx.chunkSizeBytes);
  forEachPiece(ctx.chunkSizeBytes, offset, length, (chunk, offsetInChunk, pieceLength) => {
    const mapped = lookup(ctx.store, map, chunk) !== 0;
    if (mode === "hole") {
      if (!mapped) return;
      if (coversChunk(ctx, chunk, offsetInChunk, pieceLength, sizeBytes)) {
        const leaf = writableLeaf(ctx.store, map, chunk);
        const index = leafIndex(chunk);
        const extent = leaf.entries[index]!;
        leaf.entries[index] = 0;
        ctx.store.touch(leaf);
        ctx.store.decrefExtent(extent);
        mappedChange--;
        return;
      }
    }
    mappedChange += writePiece(ctx, map, chunk, offsetInChunk, zeroes.subarray(0, pieceLength), batch);
  });
  ctx.file.writeAll(batch.pieces);
  return mappedChange;
}

/** The file writes of one request, and how many of the reused whole-chunk buffers it has taken. */
interface WriteBatch {
  pieces: FileIo[];
  wholeChunksTaken: number;
}

function newBatch(): WriteBatch {
  return { pieces: [], wholeChunksTaken: 0 };
}

/**
 * Whole-chunk buffers for copy-on-write, reused from one request to the next so that the first write after a
 * snapshot allocates nothing per chunk. Only the first and last piece of a range can be partial, so a request takes
 * at most two; requests run synchronously, so one set per context is never shared by two at once.
 */
const wholeChunkBuffers = new WeakMap<IoContext, Buffer[]>();

function takeWholeChunk(ctx: IoContext, batch: WriteBatch): Buffer {
  let buffers = wholeChunkBuffers.get(ctx);
  if (!buffers) wholeChunkBuffers.set(ctx, (buffers = []));
  return (buffers[batch.wholeChunksTaken++] ??= Buffer.allocUnsafe(ctx.chunkSizeBytes));
}

/** A chunk of zeroes per chunk size, shared: it is only ever written from, never into. */
const zeroChunks = new Map<number, Buffer>();

function zeroChunk(chunkSizeBytes: number): Buffer {
  let zeroes = zeroChunks.get(chunkSizeBytes);
  if (!zeroes) zeroChunks.set(chunkSizeBytes, (zeroes = Buffer.alloc(chunkSizeBytes)));
  return zeroes;
}

/**
 * One chunk's part of a write. An extent this image holds alone is overwritten in place; otherwise a new extent
 * gets the old content (or zeroes) with the piece laid over it, and the old extent loses this image's reference.
 */
function writePiece(ctx: IoContext, map: ImageMap, chunk: number, offsetInChunk: number, data: Uint8Array, batch: WriteBatch): 0 | 1 {
  const { store, file, chunkSizeBytes } = ctx;
  const { pieces } = batch;
  const leaf = writableLeaf(store, map, chunk);
  const index = leafIndex(chunk);
  const old = leaf.entries[index]!;
  if (old !== 0 && store.extentWritableInPlace(old)) {
    pieces.push({ position: file.position(old, offsetInChunk), buffer: data });
    return 0;
  }
  const { id, fresh } = store.allocateExtent();
  if (data.byteLength === chunkSizeBytes) {
    pieces.push({ position: file.position(id), buffer: data });
  } else if (old === 0 && fresh) {
    // A fresh extent lies past the end of everything ever written: the rest of it already reads as zeroes.
    pieces.push({ position: file.position(id, offsetInChunk), buffer: data });
  } else {
    const whole = takeWholeChunk(ctx, batch);
    if (old === 0) whole.fill(0);
    else file.readAll([{ position: file.position(old), buffer: whole }]);
    whole.set(data, offsetInChunk);
    pieces.push({ position: file.position(id), buffer: whole });
  }
  if (old !== 0) store.decrefExtent(old);
  leaf.entries[index] = id;
  store.touch(leaf);
  return old === 0 ? 1 : 0;
}
