// Disk snapshot and hydration rows of the metadata database, and the host interface the durable tier runs on.
import type { MetaDb } from "../metadata.ts";
import type { SanLimits, SectorSize } from "../types.ts";
import type { DurableStore } from "./store.ts";

/** A disk snapshot: one member of a family, stored in a DurableStore. */
export interface DiskSnapshotRow {
  name: string;
  member_id: string;
  family: string;
  source_resource_id: string;
  exported_from: string;
  previous_member: string | null;
  seq: number;
  size_bytes: number;
  sector_size: number;
  chunk_size: number;
  state: "exporting" | "ready";
  /** The pinned image being exported; kept after export while this is its family's newest member (the next base). */
  pin_id: string | null;
  /** The previous member's pin the export diffs against; null for a full export. */
  base_pin_id: string | null;
  total_chunks: number;
  done_chunks: number;
  used_bytes: number;
  store: string;
  manifest_gen: number;
  created_at: number;
}

/** A restored volume's hydration from a disk snapshot. */
export interface HydrationRow {
  volume_id: string;
  disk_snapshot: string;
  state: "hydrating" | "complete";
  /** Chunks of the chain before this index are hydrated (or written by the user). */
  cursor: number;
  total_chunks: number;
  completion_percent: number;
}

/** A pinned image: an internal, unlisted copy of a volume's or snapshot's state at one instant. */
export interface PinInfo {
  pinId: string;
  sizeBytes: number;
  sectorSize: SectorSize;
  source: { kind: string; sourceId?: string; sourceUniqueId?: string };
}

/** What the durable tier needs from the SAN: pins, chunk-level reads, and unguarded I/O on hydrating volumes. */
export interface DurableHost {
  readonly dataDir: string;
  readonly chunkSizeBytes: number;
  readonly limits: SanLimits;
  readonly db: MetaDb;
  now(): number;
  openStore(location: string): DurableStore;
  newUniqueId(): string;
  /** Pins an image; `alongside` runs in the pin's commit, so whatever records the pin commits with it. */
  pin(imageId: string, alongside?: (pin: PinInfo) => void): PinInfo;
  /** Releases a pin; `alongside` runs in the same commit (also when the pin is already gone). */
  unpin(pinId: string, alongside?: () => void): void;
  /** The family an image belongs to: the volume it is (or was taken of), by id and unique id. */
  imageSource(imageId: string): { sourceResourceId: string; family: string };
  hasPin(pinId: string): boolean;
  changedChunks(pinId: string, basePinId: string | null): number[];
  readChunks(imageId: string, chunks: readonly number[]): (Buffer | null)[];
  chunkMapped(volumeId: string, chunk: number): boolean;
  volumeExists(volumeId: string): boolean;
  volumeSize(volumeId: string): number;
  /** I/O on a volume that bypasses the hydration guard; only the tier calls these. */
  readRaw(volumeId: string, offset: number, length: number): Buffer;
  writeRaw(volumeId: string, offset: number, data: Uint8Array, fua: boolean): void;
  zeroRaw(volumeId: string, offset: number, length: number, fua: boolean): void;
  flush(): void;
}

/** Typed access to the durable tier's tables. */
export class DurableRows {
  readonly #db: MetaDb;

  constructor(db: MetaDb) {
    this.#db = db;
  }

  all(): DiskSnapshotRow[] {
    return this.#db.db.prepare("SELECT * FROM disk_snapshots ORDER BY seq").all() as unknown as DiskSnapshotRow[];
  }

  get(name: string): DiskSnapshotRow | undefined {
    return this.#db.db.prepare("SELECT * FROM disk_snapshots WHERE name = ?").get(name) as unknown as DiskSnapshotRow | undefined;
  }

  byMember(memberId: string): DiskSnapshotRow | undefined {
    return this.#db.db.prepare("SELECT * FROM disk_snapshots WHERE member_id = ?").get(memberId) as unknown as DiskSnapshotRow | undefined;
  }

  family(family: string): DiskSnapshotRow[] {
    return this.#db.db.prepare("SELECT * FROM disk_snapshots WHERE family = ? ORDER BY seq").all(family) as unknown as DiskSnapshotRow[];
  }

  insert(row: DiskSnapshotRow): void {
    const columns = Object.keys(row);
    this.#db.db
      .prepare(`INSERT INTO disk_snapshots (${columns.join(", ")}) VALUES (${columns.map((c) => `:${c}`).join(", ")})`)
      .run(row as unknown as Record<string, string | number | null>);
  }

  update(name: string, fields: Partial<DiskSnapshotRow>): void {
    const columns = Object.keys(fields);
    if (columns.length === 0) return;
    this.#db.db
      .prepare(`UPDATE disk_snapshots SET ${columns.map((c) => `${c} = :${c}`).join(", ")} WHERE name = :name`)
      .run({ ...(fields as Record<string, string | number | null>), name });
  }

  /** Runs `work` in one transaction (callers outside a SAN commit group several row changes this way). */
  transaction(work: () => void): void {
    this.#db.transaction(work);
  }

  delete(name: string): void {
    this.#db.db.prepare("DELETE FROM disk_snapshots WHERE name = ?").run(name);
    this.#db.db.prepare("DELETE FROM disk_snapshot_segments WHERE name = ?").run(name);
  }

  segments(name: string): { idx: number; object_key: string | null; ranges: string; zeroes: string }[] {
    return this.#db.db.prepare("SELECT idx, object_key, ranges, zeroes FROM disk_snapshot_segments WHERE name = ? ORDER BY idx").all(name) as unknown as {
      idx: number;
      object_key: string | null;
      ranges: string;
      zeroes: string;
    }[];
  }

  /** Records one finished segment and the export's progress in one transaction. */
  addSegment(name: string, idx: number, objectKey: string | null, ranges: string, zeroes: string, doneChunks: number): void {
    this.#db.transaction(() => {
      this.#db.db
        .prepare("INSERT OR REPLACE INTO disk_snapshot_segments (name, idx, object_key, ranges, zeroes) VALUES (?, ?, ?, ?, ?)")
        .run(name, idx, objectKey, ranges, zeroes);
      this.#db.db.prepare("UPDATE disk_snapshots SET done_chunks = ? WHERE name = ?").run(doneChunks, name);
    });
  }

  nextSeq(): number {
    const row = this.#db.db.prepare("SELECT coalesce(max(seq), 0) + 1 AS next FROM disk_snapshots").get() as unknown as { next: number };
    return row.next;
  }

  /** Creation times after `sinceMs` under a rate key. */
  creations(key: string, sinceMs: number): number[] {
    const rows = this.#db.db.prepare("SELECT at FROM snapshot_creations WHERE source_unique_id = ? AND at > ?").all(key, sinceMs) as unknown as { at: number }[];
    return rows.map((r) => r.at);
  }

  addCreation(key: string, atMs: number): void {
    this.#db.addSnapshotCreation.run(key, atMs);
  }

  hydrations(): HydrationRow[] {
    return this.#db.db.prepare("SELECT * FROM hydrations").all() as unknown as HydrationRow[];
  }

  putHydration(row: HydrationRow): void {
    this.#db.db
      .prepare(
        "INSERT OR REPLACE INTO hydrations (volume_id, disk_snapshot, state, cursor, total_chunks, completion_percent) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(row.volume_id, row.disk_snapshot, row.state, row.cursor, row.total_chunks, row.completion_percent);
  }

  deleteHydration(volumeId: string): void {
    this.#db.db.prepare("DELETE FROM hydrations WHERE volume_id = ?").run(volumeId);
  }
}
