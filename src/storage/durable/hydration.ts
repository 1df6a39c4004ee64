// Restored volumes: reads fall through to the durable store until a background job has copied every chunk.
import { forEachPiece } from "../image-io.ts";
import type { ChainIndex } from "./chain-index.ts";
import type { DurableHost, DurableRows, HydrationRow } from "./records.ts";
import type { DurableStore } from "./store.ts";

/**
 * Chunks hydrated between two progress commits. Small enough that a batch's synchronous write and flush keep the
 * event loop free for the volume's own reads, which must not wait behind the background copy.
 */
export const PROGRESS_EVERY_CHUNKS = 64;

/** What a hydrating volume reads through to: the chain index of its disk snapshot and the store holding it. */
export interface HydrationSource {
  store: DurableStore;
  index: ChainIndex;
  chunkSizeBytes: number;
}

/**
 * One restored volume while it hydrates.
 *
 * Invariant: a chunk mapped in the volume's own map is local (hydrated or written by the user) and is never read
 * from, or written with, the store's data again. The check and the write happen in one synchronous step, so a
 * user write always wins over data hydrated later, and after a crash the committed map says what is local.
 * Trims and zeroes on a hydrating volume write real zeroes for the same reason: an unmapped chunk would read
 * through to the store.
 */
export class Hydration {
  readonly volumeId: string;
  readonly diskSnapshot: string;
  readonly #host: DurableHost;
  readonly #rows: DurableRows;
  readonly #source: HydrationSource;
  #row: HydrationRow;
  #stopped = false;

  constructor(host: DurableHost, rows: DurableRows, row: HydrationRow, source: HydrationSource) {
    this.#host = host;
    this.#rows = rows;
    this.#row = row;
    this.#source = source;
    this.volumeId = row.volume_id;
    this.diskSnapshot = row.disk_snapshot;
  }

  get state(): HydrationRow["state"] {
    return this.#row.state;
  }

  get completionPercent(): number {
    return this.#row.completion_percent;
  }

  /** Stops the background job (the volume was deleted or the SAN is closing). */
  stop(): void {
    this.#stopped = true;
  }

  /** Copies every chunk not yet local, persisting progress after each flush; resolves when hydration completes. */
  async run(): Promise<void> {
    const { index } = this.#source;
    const total = index.coveredChunks;
    let cursor = this.#row.cursor;
    while (cursor < total && !this.#stopped) {
      const batch = index.coveredSlice(cursor, PROGRESS_EVERY_CHUNKS);
      const fetched = await this.#fetch(batch.filter((chunk) => !this.#host.chunkMapped(this.volumeId, chunk)));
      if (this.#stopped || !this.#host.volumeExists(this.volumeId)) return;
      for (const [chunk, data] of fetched) this.#hydrateChunk(chunk, data);
      cursor += batch.length;
      // Progress may only run ahead of what a crash keeps once the hydrated chunks are durable.
      this.#host.flush();
      this.#save({ cursor, completion_percent: Math.min(99, Math.floor((cursor * 100) / Math.max(1, total))) });
      // Let foreground I/O that arrived during the batch run before the next one.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.#stopped) return;
    this.#host.flush();
    this.#save({ state: "complete", cursor, completion_percent: 100 });
  }

  /** Reads a range: local chunks from the volume, the rest from the store. */
  async read(offset: number, length: number): Promise<Buffer> {
    const fetched = await this.#fetch(this.#missing(offset, length, false));
    const out = this.#host.readRaw(this.volumeId, offset, length);
    for (const [chunk, data] of fetched) {
      if (this.#host.chunkMapped(this.volumeId, chunk)) continue;
      const chunkStart = chunk * this.#source.chunkSizeBytes;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(offset + length, chunkStart + data.byteLength);
      if (to > from) data.copy(out, from - offset, from - chunkStart, to - chunkStart);
    }
    return out;
  }

  /** Writes a range; chunks it covers only in part are first hydrated, so their other bytes stay right. */
  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    await this.#prepare(offset, data.byteLength);
    this.#host.writeRaw(this.volumeId, offset, data, fua);
  }

  /** Zeroes a range with real zeroes (see the class comment), hydrating partly covered chunks first. */
  async zero(offset: number, length: number, fua: boolean): Promise<void> {
    await this.#prepare(offset, length);
    this.#host.zeroRaw(this.volumeId, offset, length, fua);
  }

  async #prepare(offset: number, length: number): Promise<void> {
    const fetched = await this.#fetch(this.#missing(offset, length, true));
    for (const [chunk, data] of fetched) this.#hydrateChunk(chunk, data);
  }

  /** Writes store data into a chunk unless the chunk became local meanwhile: the user's data wins. */
  #hydrateChunk(chunk: number, data: Buffer): void {
    if (this.#host.chunkMapped(this.volumeId, chunk)) return;
    const start = chunk * this.#source.chunkSizeBytes;
    const length = Math.min(data.byteLength, this.#host.volumeSize(this.volumeId) - start);
    if (length > 0) this.#host.writeRaw(this.volumeId, start, data.subarray(0, length), false);
  }

  /** Chunks of a range that are neither local nor zero in the disk snapshot (only partly covered ones if asked). */
  #missing(offset: number, length: number, partialOnly: boolean): number[] {
    const chunks: number[] = [];
    forEachPiece(this.#source.chunkSizeBytes, offset, length, (chunk, _offsetInChunk, pieceLength) => {
      if (partialOnly && pieceLength === this.#source.chunkSizeBytes) return;
      const location = this.#source.index.locate(chunk);
      if (location === undefined || location === "zero") return;
      if (!this.#host.chunkMapped(this.volumeId, chunk)) chunks.push(chunk);
    });
    return chunks;
  }

  /** Fetches chunks from the store, one ranged get per run of neighbouring slots of one segment object. */
  async #fetch(chunks: number[]): Promise<Map<number, Buffer>> {
    const out = new Map<number, Buffer>();
    const size = this.#source.chunkSizeBytes;
    let i = 0;
    while (i < chunks.length) {
      const first = this.#source.index.locate(chunks[i]!);
      if (first === undefined || first === "zero") {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < chunks.length) {
        const next = this.#source.index.locate(chunks[j]!);
        if (next === undefined || next === "zero" || next.key !== first.key || next.slot !== first.slot + (j - i)) break;
        j++;
      }
      const bytes = await this.#source.store.get(first.key, { offset: first.slot * size, length: (j - i) * size });
      for (let k = i; k < j; k++) out.set(chunks[k]!, bytes.subarray((k - i) * size, (k - i + 1) * size));
      i = j;
    }
    return out;
  }

  #save(fields: Partial<HydrationRow>): void {
    this.#row = { ...this.#row, ...fields };
    this.#rows.putHydration(this.#row);
  }
}
