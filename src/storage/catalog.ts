// The catalog held in memory: volume groups, images (volumes and snapshots) and group snapshots, and their rows.
import type { ImageMap } from "./chunk-map.ts";
import { InvalidArgumentError } from "./errors.ts";
import type { ImageRow, MetaDb } from "./metadata.ts";
import type { CreationSource, ListOptions, ListPage, SectorSize } from "./types.ts";

/**
 * A volume, a snapshot or a pin: all are images with a map; only volumes take writes. A pin is an internal,
 * unlisted snapshot that holds a state still needed by a background job (an export, or the base of the next
 * incremental export); its id is `pin:UNIQUE_ID` and it belongs to no volume group.
 */
export interface ImageRecord {
  id: string;
  volumeGroup: string;
  name: string;
  kind: ImageKind;
  uniqueId: string;
  sizeBytes: number;
  sectorSize: SectorSize;
  map: ImageMap;
  /** For a volume, where its content came from; for a snapshot, the volume it was taken of. */
  source: CreationSource;
  groupSnapshotId: string | null;
  /** Creation order across the SAN; orders snapshots of one source. */
  seq: number;
  /** Chunks mapped in this image, kept current by every write and committed with the map. */
  mappedChunks: number;
  createdAtMs: number;
}

export type ImageKind = "volume" | "snapshot" | "pin";

export interface VolumeGroupRecord {
  name: string;
  createdAtMs: number;
}

export interface GroupSnapshotRecord {
  id: string;
  volumeGroup: string;
  name: string;
  createdAtMs: number;
  members: { snapshotId: string; sourceId: string }[];
}

/** Everything the catalog tables hold, loaded once at open. */
export interface LoadedCatalog {
  volumeGroups: Map<string, VolumeGroupRecord>;
  images: Map<string, ImageRecord>;
  groupSnapshots: Map<string, GroupSnapshotRecord>;
  creations: Map<string, number[]>;
  nextSeq: number;
}

/** Reads the catalog tables; snapshot creations older than `windowStartMs` are dropped, they no longer count. */
export function loadCatalog(db: MetaDb, windowStartMs: number): LoadedCatalog {
  const volumeGroups = new Map<string, VolumeGroupRecord>();
  for (const row of db.db.prepare("SELECT name, created_at FROM volume_groups").all() as unknown as { name: string; created_at: number }[]) {
    volumeGroups.set(row.name, { name: row.name, createdAtMs: row.created_at });
  }
  const images = new Map<string, ImageRecord>();
  let nextSeq = 1;
  for (const row of db.db.prepare("SELECT * FROM images").all() as unknown as ImageRow[]) {
    images.set(row.id, imageFromRow(row));
    nextSeq = Math.max(nextSeq, row.seq + 1);
  }
  const groupSnapshots = new Map<string, GroupSnapshotRecord>();
  const groupRows = db.db.prepare("SELECT id, volume_group, name, members, created_at FROM group_snapshots").all() as unknown as {
    id: string;
    volume_group: string;
    name: string;
    members: string;
    created_at: number;
  }[];
  for (const row of groupRows) {
    groupSnapshots.set(row.id, {
      id: row.id,
      volumeGroup: row.volume_group,
      name: row.name,
      createdAtMs: row.created_at,
      members: JSON.parse(row.members) as GroupSnapshotRecord["members"],
    });
  }
  db.db.prepare("DELETE FROM snapshot_creations WHERE at <= ?").run(windowStartMs);
  const creations = new Map<string, number[]>();
  for (const row of db.db.prepare("SELECT source_unique_id, at FROM snapshot_creations ORDER BY at").all() as unknown as {
    source_unique_id: string;
    at: number;
  }[]) {
    const list = creations.get(row.source_unique_id) ?? [];
    list.push(row.at);
    creations.set(row.source_unique_id, list);
  }
  return { volumeGroups, images, groupSnapshots, creations, nextSeq };
}

function imageFromRow(row: ImageRow): ImageRecord {
  let source: CreationSource = { kind: "none" };
  if (row.source_kind === "snapshot" || row.source_kind === "volume" || row.source_kind === "diskSnapshot") {
    source = { kind: row.source_kind, sourceId: row.source_id ?? "", sourceUniqueId: row.source_unique_id ?? "" };
  }
  return {
    id: row.id,
    volumeGroup: row.volume_group,
    name: row.name,
    kind: row.kind,
    uniqueId: row.unique_id,
    sizeBytes: row.size_bytes,
    sectorSize: row.sector_size as SectorSize,
    map: { root: row.root_page, depth: row.depth },
    source,
    groupSnapshotId: row.group_snapshot_id,
    seq: row.seq,
    createdAtMs: row.created_at,
    mappedChunks: row.mapped_chunks,
  };
}

/** Inserts an image row. */
export function insertImage(db: MetaDb, image: ImageRecord): void {
  const source = image.source;
  db.putImage.run({
    id: image.id,
    volume_group: image.volumeGroup,
    name: image.name,
    kind: image.kind,
    unique_id: image.uniqueId,
    size_bytes: image.sizeBytes,
    sector_size: image.sectorSize,
    root_page: image.map.root,
    depth: image.map.depth,
    mapped_chunks: image.mappedChunks,
    source_kind: source.kind,
    source_id: source.kind === "none" ? null : source.sourceId,
    source_unique_id: source.kind === "none" ? null : source.sourceUniqueId,
    group_snapshot_id: image.groupSnapshotId,
    seq: image.seq,
    created_at: image.createdAtMs,
  });
}

/** Inserts a group snapshot row. */
export function insertGroupSnapshot(db: MetaDb, group: GroupSnapshotRecord): void {
  db.db
    .prepare("INSERT INTO group_snapshots (id, volume_group, name, members, created_at) VALUES (?, ?, ?, ?, ?)")
    .run(group.id, group.volumeGroup, group.name, JSON.stringify(group.members), group.createdAtMs);
}

const TOKEN_PREFIX = "esan1:";

/** Sorts by id and returns at most `maxEntries` after `startingToken`; tokens are opaque to callers. */
export function paginate<T>(items: T[], idOf: (item: T) => string, options: ListOptions = {}): ListPage<T> {
  const maxEntries = options.maxEntries ?? 0;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) {
    throw new InvalidArgumentError(`maxEntries must be a whole number of 0 or more (0 means all); got ${String(maxEntries)}.`);
  }
  const sorted = [...items].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  let start = 0;
  if (options.startingToken) {
    const after = decodeToken(options.startingToken);
    start = sorted.findIndex((item) => idOf(item) > after);
    if (start < 0) start = sorted.length;
  }
  const end = maxEntries === 0 ? sorted.length : Math.min(sorted.length, start + maxEntries);
  const entries = sorted.slice(start, end);
  const last = entries[entries.length - 1];
  const nextToken = end < sorted.length && last !== undefined ? encodeToken(idOf(last)) : "";
  return { entries, nextToken };
}

function encodeToken(lastId: string): string {
  return Buffer.from(TOKEN_PREFIX + lastId).toString("base64url");
}

function decodeToken(token: string): string {
  const text = Buffer.from(token, "base64url").toString("utf8");
  if (!text.startsWith(TOKEN_PREFIX)) {
    throw new InvalidArgumentError(`The starting token '${token}' was not issued by esan; start the listing again without a token.`);
  }
  return text.slice(TOKEN_PREFIX.length);
}
