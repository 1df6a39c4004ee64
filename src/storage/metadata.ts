// The metadata database (node:sqlite, WAL): schema, settings and the prepared statements the engine commits with.
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** Bumped when the schema changes incompatibly. */
export const FORMAT_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS volume_groups (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  volume_group TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('volume', 'snapshot', 'pin')),
  unique_id TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  sector_size INTEGER NOT NULL,
  root_page INTEGER NOT NULL,
  depth INTEGER NOT NULL,
  mapped_chunks INTEGER NOT NULL,
  source_kind TEXT NOT NULL,
  source_id TEXT,
  source_unique_id TEXT,
  group_snapshot_id TEXT,
  seq INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS group_snapshots (
  id TEXT PRIMARY KEY,
  volume_group TEXT NOT NULL,
  name TEXT NOT NULL,
  members TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, level INTEGER NOT NULL, refs INTEGER NOT NULL, entries BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS extents (id INTEGER PRIMARY KEY, refs INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS free_extents (id INTEGER PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS snapshot_creations (source_unique_id TEXT NOT NULL, at INTEGER NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS snapshot_creations_by_source ON snapshot_creations (source_unique_id, at);
CREATE TABLE IF NOT EXISTS disk_snapshots (
  name TEXT PRIMARY KEY,
  member_id TEXT NOT NULL UNIQUE,
  family TEXT NOT NULL,
  source_resource_id TEXT NOT NULL,
  exported_from TEXT NOT NULL,
  previous_member TEXT,
  seq INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL,
  sector_size INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('exporting', 'ready')),
  pin_id TEXT,
  base_pin_id TEXT,
  total_chunks INTEGER NOT NULL,
  done_chunks INTEGER NOT NULL,
  used_bytes INTEGER NOT NULL,
  store TEXT NOT NULL,
  manifest_gen INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS disk_snapshot_segments (
  name TEXT NOT NULL,
  idx INTEGER NOT NULL,
  object_key TEXT,
  ranges TEXT NOT NULL,
  zeroes TEXT NOT NULL,
  PRIMARY KEY (name, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS hydrations (
  volume_id TEXT PRIMARY KEY,
  disk_snapshot TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('hydrating', 'complete')),
  cursor INTEGER NOT NULL,
  total_chunks INTEGER NOT NULL,
  completion_percent INTEGER NOT NULL
) STRICT;
`;

/** A row of the images table (volumes and snapshots). */
export interface ImageRow {
  id: string;
  volume_group: string;
  name: string;
  kind: "volume" | "snapshot" | "pin";
  unique_id: string;
  size_bytes: number;
  sector_size: number;
  root_page: number;
  depth: number;
  mapped_chunks: number;
  source_kind: string;
  source_id: string | null;
  source_unique_id: string | null;
  group_snapshot_id: string | null;
  seq: number;
  created_at: number;
}

/** The database handle and every statement the engine runs more than once. */
export class MetaDb {
  readonly db: DatabaseSync;
  readonly getPage: StatementSync;
  readonly putPage: StatementSync;
  readonly deletePage: StatementSync;
  readonly getExtentRefs: StatementSync;
  readonly putExtent: StatementSync;
  readonly deleteExtent: StatementSync;
  readonly addFreeExtent: StatementSync;
  readonly takeFreeExtent: StatementSync;
  readonly putImage: StatementSync;
  readonly updateImageMap: StatementSync;
  readonly deleteImage: StatementSync;
  readonly putSetting: StatementSync;
  readonly addSnapshotCreation: StatementSync;

  constructor(file: string) {
    this.db = new DatabaseSync(file);
    // FULL: a commit is durable when COMMIT returns, which is what flush() promises.
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
    this.db.exec(SCHEMA);
    this.getPage = this.db.prepare("SELECT level, refs, entries FROM pages WHERE id = ?");
    this.putPage = this.db.prepare("INSERT OR REPLACE INTO pages (id, level, refs, entries) VALUES (?, ?, ?, ?)");
    this.deletePage = this.db.prepare("DELETE FROM pages WHERE id = ?");
    this.getExtentRefs = this.db.prepare("SELECT refs FROM extents WHERE id = ?");
    this.putExtent = this.db.prepare("INSERT OR REPLACE INTO extents (id, refs) VALUES (?, ?)");
    this.deleteExtent = this.db.prepare("DELETE FROM extents WHERE id = ?");
    this.addFreeExtent = this.db.prepare("INSERT OR IGNORE INTO free_extents (id) VALUES (?)");
    this.takeFreeExtent = this.db.prepare("DELETE FROM free_extents WHERE id = ?");
    this.putImage = this.db.prepare(
      `INSERT INTO images (id, volume_group, name, kind, unique_id, size_bytes, sector_size, root_page, depth,
         mapped_chunks, source_kind, source_id, source_unique_id, group_snapshot_id, seq, created_at)
       VALUES (:id, :volume_group, :name, :kind, :unique_id, :size_bytes, :sector_size, :root_page, :depth,
         :mapped_chunks, :source_kind, :source_id, :source_unique_id, :group_snapshot_id, :seq, :created_at)`,
    );
    this.updateImageMap = this.db.prepare("UPDATE images SET root_page = ?, depth = ?, mapped_chunks = ?, size_bytes = ? WHERE id = ?");
    this.deleteImage = this.db.prepare("DELETE FROM images WHERE id = ?");
    this.putSetting = this.db.prepare("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)");
    this.addSnapshotCreation = this.db.prepare("INSERT INTO snapshot_creations (source_unique_id, at) VALUES (?, ?)");
  }

  /** Reads every setting as a key → value map. */
  settings(): Map<string, string> {
    const rows = this.db.prepare("SELECT key, value FROM settings").all() as unknown as { key: string; value: string }[];
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  /** Runs `work` in one transaction; a throw rolls everything back. */
  transaction(work: () => void): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      work();
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }

  close(): void {
    this.db.close();
  }
}
