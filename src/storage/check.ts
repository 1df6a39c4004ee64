// Full consistency check of committed metadata: reference counts, ownership, levels, bounds and leaks.
import { FANOUT, FANOUT_BITS } from "./page-store.ts";
import type { MetaDb } from "./metadata.ts";
import type { CheckReport } from "./types.ts";

interface PageRow {
  id: number;
  level: number;
  refs: number;
  entries: Uint8Array;
}

/**
 * Recomputes every reference count from the images' roots and compares it with what is stored. Reads only the
 * database, so it checks exactly what a crash would leave behind.
 */
export function checkConsistency(db: MetaDb, chunkSizeBytes: number): CheckReport {
  const faults: string[] = [];
  const fault = (message: string): void => {
    if (faults.length < 100) faults.push(message);
    else if (faults.length === 100) faults.push("… more faults not shown");
  };
  const settings = db.settings();
  const highWater = Number(settings.get("extentHighWater") ?? "0");
  const nextPageId = Number(settings.get("nextPageId") ?? "1");

  const pages = new Map<number, { level: number; refs: number; entries: Uint32Array }>();
  for (const row of db.db.prepare("SELECT id, level, refs, entries FROM pages").all() as unknown as PageRow[]) {
    const entries = new Uint32Array(FANOUT);
    new Uint8Array(entries.buffer).set(row.entries);
    pages.set(row.id, { level: row.level, refs: row.refs, entries });
    if (row.id >= nextPageId) fault(`page ${row.id} is at or past the next page id ${nextPageId}`);
  }
  const images = db.db.prepare("SELECT id, root_page, depth, size_bytes, mapped_chunks FROM images").all() as unknown as {
    id: string;
    root_page: number;
    depth: number;
    size_bytes: number;
    mapped_chunks: number;
  }[];

  const pageRefs = new Map<number, number>();
  const extentRefs = new Map<number, number>();
  const pending: number[] = [];
  for (const image of images) {
    if (image.root_page === 0) continue;
    const root = pages.get(image.root_page);
    if (!root) {
      fault(`image ${image.id} points at missing root page ${image.root_page}`);
      continue;
    }
    if (root.level !== image.depth) fault(`image ${image.id} has depth ${image.depth} but its root page is level ${root.level}`);
    pageRefs.set(image.root_page, (pageRefs.get(image.root_page) ?? 0) + 1);
    pending.push(image.root_page);
    checkBeyondEnd(image, pages, chunkSizeBytes, fault);
  }

  // Every reachable page counts its children once, however many parents reach it.
  const visited = new Set<number>();
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (visited.has(id)) continue;
    visited.add(id);
    const page = pages.get(id)!;
    for (const child of page.entries) {
      if (child === 0) continue;
      if (page.level === 0) {
        extentRefs.set(child, (extentRefs.get(child) ?? 0) + 1);
        continue;
      }
      const childPage = pages.get(child);
      if (!childPage) {
        fault(`page ${id} points at missing page ${child}`);
        continue;
      }
      if (childPage.level !== page.level - 1) fault(`page ${child} is level ${childPage.level} under level-${page.level} page ${id}`);
      pageRefs.set(child, (pageRefs.get(child) ?? 0) + 1);
      pending.push(child);
    }
  }

  // Mapped chunks under each page, counted once per page however many images share it.
  const mappedUnder = new Map<number, number>();
  const countMapped = (id: number): number => {
    const known = mappedUnder.get(id);
    if (known !== undefined) return known;
    const page = pages.get(id);
    let count = 0;
    for (const entry of page?.entries ?? []) {
      if (entry !== 0) count += page!.level === 0 ? 1 : pages.has(entry) ? countMapped(entry) : 0;
    }
    mappedUnder.set(id, count);
    return count;
  };
  for (const image of images) {
    const actual = image.root_page === 0 ? 0 : countMapped(image.root_page);
    if (actual !== image.mapped_chunks) fault(`image ${image.id} records ${image.mapped_chunks} mapped chunks but maps ${actual}`);
  }

  for (const [id, page] of pages) {
    const expected = pageRefs.get(id) ?? 0;
    if (expected === 0) fault(`page ${id} is stored but no image reaches it (leaked)`);
    else if (page.refs !== expected) fault(`page ${id} stores ${page.refs} references but ${expected} parents point at it`);
  }

  const owned = new Uint8Array(highWater + 1);
  const storedExtents = db.db.prepare("SELECT id, refs FROM extents").all() as unknown as { id: number; refs: number }[];
  const stored = new Map(storedExtents.map((r) => [r.id, r.refs]));
  for (const [id, expected] of extentRefs) {
    if (id > highWater) fault(`extent ${id} is mapped but lies past the high-water mark ${highWater}`);
    else owned[id] = 1;
    const refs = stored.get(id);
    if (refs === undefined) fault(`extent ${id} is mapped by ${expected} pages but has no reference count`);
    else if (refs !== expected) fault(`extent ${id} stores ${refs} references but ${expected} pages map it`);
  }
  for (const [id] of stored) {
    if (!extentRefs.has(id)) fault(`extent ${id} has a reference count but no page maps it (leaked)`);
  }
  let freeExtents = 0;
  for (const { id } of db.db.prepare("SELECT id FROM free_extents").all() as unknown as { id: number }[]) {
    freeExtents++;
    if (id < 1 || id > highWater) fault(`free extent ${id} lies outside 1..${highWater}`);
    else if (owned[id] === 1) fault(`extent ${id} is both mapped and free (doubly owned)`);
    else owned[id] = 2;
  }
  for (let id = 1; id <= highWater; id++) {
    if (owned[id] === 0) fault(`extent ${id} is neither mapped nor free (leaked)`);
  }
  checkDurableRecords(db, fault);
  return { ok: faults.length === 0, faults, pages: pages.size, extents: extentRefs.size, freeExtents };
}

/**
 * The durable tier's records agree with the images: every pin is owned by a disk snapshot (a pin nothing owns
 * would hold its chunks for ever), every pin a disk snapshot names exists, an unfinished export still has the pin
 * it resumes from, and every hydration belongs to a volume.
 */
function checkDurableRecords(db: MetaDb, fault: (message: string) => void): void {
  const kinds = new Map(
    (db.db.prepare("SELECT id, kind FROM images").all() as unknown as { id: string; kind: string }[]).map((r) => [r.id, r.kind]),
  );
  const disks = db.db.prepare("SELECT name, state, pin_id, base_pin_id FROM disk_snapshots").all() as unknown as {
    name: string;
    state: string;
    pin_id: string | null;
    base_pin_id: string | null;
  }[];
  const owned = new Set<string>();
  for (const disk of disks) {
    for (const pin of [disk.pin_id, disk.base_pin_id]) {
      if (pin === null) continue;
      owned.add(pin);
      if (kinds.get(pin) !== "pin") fault(`disk snapshot ${disk.name} names pin ${pin}, which does not exist`);
    }
    if (disk.state === "exporting" && disk.pin_id === null) fault(`disk snapshot ${disk.name} is exporting but has no pin to export from`);
  }
  for (const [id, kind] of kinds) {
    if (kind === "pin" && !owned.has(id)) fault(`pin ${id} is owned by no disk snapshot (leaked)`);
  }
  for (const { volume_id } of db.db.prepare("SELECT volume_id FROM hydrations").all() as unknown as { volume_id: string }[]) {
    if (kinds.get(volume_id) !== "volume") fault(`a hydration is recorded for ${volume_id}, which is not a volume`);
  }
}

/** Nothing may be mapped past an image's last chunk: check the entries right of the path to that chunk. */
function checkBeyondEnd(
  image: { id: string; root_page: number; depth: number; size_bytes: number },
  pages: Map<number, { level: number; entries: Uint32Array }>,
  chunkSizeBytes: number,
  fault: (message: string) => void,
): void {
  const lastChunk = Math.max(0, Math.ceil(image.size_bytes / chunkSizeBytes) - 1);
  let id = image.root_page;
  for (let level = image.depth; level >= 0; level--) {
    const page = pages.get(id);
    if (!page) return;
    const index = (lastChunk >>> (FANOUT_BITS * level)) & (FANOUT - 1);
    for (let i = index + 1; i < FANOUT; i++) {
      if (page.entries[i] !== 0) {
        fault(`image ${image.id} maps data past its end (level ${level}, entry ${i} of page ${id})`);
        return;
      }
    }
    id = page.entries[index]!;
    if (id === 0 || level === 0) return;
  }
}
