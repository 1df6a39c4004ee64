// Reference-counted map pages and extents, with the extent allocator, cached in memory and committed to MetaDb.
import { CorruptError } from "./errors.ts";
import type { MetaDb } from "./metadata.ts";

/** Entries per map page. A level-0 page maps chunks to extents; a level-k page maps to level k−1 pages. */
export const FANOUT = 1024;
/** log2(FANOUT): chunk index bits consumed per level. */
export const FANOUT_BITS = 10;

/** One map page. `refs` counts the parents (images or pages) that point at it; 0 entries mean "unmapped". */
export interface Page {
  id: number;
  level: number;
  refs: number;
  entries: Uint32Array;
}

/** Counters persisted in the settings table. */
export interface StoreCounters {
  /** Highest extent id ever handed out and committed. */
  extentHighWater: number;
  /** Next page id to hand out. */
  nextPageId: number;
}

/**
 * Owns every page and extent reference count. Changes accumulate in memory and reach the database only through
 * `writeDirty`, inside the caller's commit transaction.
 *
 * Extent reuse invariant: an extent whose count drops to 0 goes to `#pendingFree`, and becomes allocatable only in
 * `afterCommit`, i.e. once the commit that records its release is durable. Until then the committed metadata may
 * still point at it, so handing it out early could let one extent belong to two images after a crash.
 *
 * Read pins: an asynchronous read pins the extents it looked up until its data has arrived. A pinned extent is
 * never overwritten in place (writes copy it instead) and, once released, is not handed out again before its last
 * pin goes, so a read in flight can never return bytes that another chunk or image wrote after the read began.
 */
export class PageStore {
  readonly #db: MetaDb;
  readonly #capacityExtents: number;
  readonly #pages = new Map<number, Page>();
  readonly #dirtyPages = new Set<number>();
  readonly #extentRefs = new Map<number, number>();
  readonly #dirtyExtents = new Set<number>();
  /** Committed-free extents, allocatable now. */
  readonly #free: number[];
  /** Released since the last commit; allocatable after the next one. */
  #pendingFree: number[] = [];
  /** Taken from `#free` since the last commit (their free_extents rows must go). */
  #takenFromFree: number[] = [];
  /** Extents that lost a reference since the last commit but are still held: the commit still shares them. */
  readonly #droppedSinceCommit = new Set<number>();
  /** Asynchronous reads in flight per extent. */
  readonly #readPins = new Map<number, number>();
  /** Committed-free extents held back from `#free` until their read pins go. */
  readonly #freeAfterReads = new Set<number>();
  #counters: StoreCounters;
  #liveExtents: number;

  constructor(db: MetaDb, counters: StoreCounters, capacityExtents: number) {
    this.#db = db;
    this.#counters = { ...counters };
    this.#capacityExtents = capacityExtents;
    const free = db.db.prepare("SELECT id FROM free_extents ORDER BY id DESC").all() as unknown as { id: number }[];
    this.#free = free.map((r) => r.id);
    const live = db.db.prepare("SELECT count(*) AS n FROM extents").get() as unknown as { n: number };
    this.#liveExtents = live.n;
  }

  get counters(): StoreCounters {
    return { ...this.#counters };
  }

  /** Extents currently referenced by some page. */
  get liveExtents(): number {
    return this.#liveExtents;
  }

  /** True when something changed since the last commit. */
  get dirty(): boolean {
    return this.#dirtyPages.size > 0 || this.#dirtyExtents.size > 0 || this.#pendingFree.length > 0;
  }

  /** The page with this id; throws Corrupt when metadata points at a page that is not there. */
  page(id: number): Page {
    const cached = this.#pages.get(id);
    if (cached) return cached;
    const row = this.#db.getPage.get(id) as { level: number; refs: number; entries: Uint8Array } | undefined;
    if (!row) throw new CorruptError(`Map page ${id} is referenced but missing from the metadata; run 'esan check'.`);
    const entries = new Uint32Array(FANOUT);
    new Uint8Array(entries.buffer).set(row.entries);
    const page: Page = { id, level: row.level, refs: row.refs, entries };
    this.#pages.set(id, page);
    return page;
  }

  /** A new page with one reference (its creator's). */
  newPage(level: number, entries?: Uint32Array): Page {
    const id = this.#counters.nextPageId++;
    const page: Page = { id, level, refs: 1, entries: entries ? entries.slice() : new Uint32Array(FANOUT) };
    this.#pages.set(id, page);
    this.#dirtyPages.add(id);
    return page;
  }

  /** Records that `page` changed in memory. */
  touch(page: Page): void {
    this.#dirtyPages.add(page.id);
  }

  /** Adds a reference to page `id` (0 is ignored). */
  increfPage(id: number): void {
    if (id === 0) return;
    const page = this.page(id);
    page.refs++;
    this.#dirtyPages.add(id);
  }

  /** Drops a reference to page `id`; at zero the page goes and so do its references to its children. */
  decrefPage(id: number): void {
    if (id === 0) return;
    const page = this.page(id);
    if (page.refs <= 0) throw new CorruptError(`Map page ${id} lost a reference it did not have; run 'esan check'.`);
    page.refs--;
    this.#dirtyPages.add(id);
    if (page.refs > 0) return;
    for (const child of page.entries) {
      if (child === 0) continue;
      if (page.level === 0) this.decrefExtent(child);
      else this.decrefPage(child);
    }
  }

  /** A private copy of a shared page: the copy takes a reference to every child, the original loses one. */
  copyOnWrite(id: number): Page {
    const original = this.page(id);
    const copy = this.newPage(original.level, original.entries);
    for (const child of copy.entries) {
      if (child === 0) continue;
      if (copy.level === 0) this.increfExtent(child);
      else this.increfPage(child);
    }
    this.decrefPage(id);
    return copy;
  }

  /** Reference count of extent `id`. */
  extentRefs(id: number): number {
    const cached = this.#extentRefs.get(id);
    if (cached !== undefined) return cached;
    const row = this.#db.getExtentRefs.get(id) as { refs: number } | undefined;
    const refs = row?.refs ?? 0;
    this.#extentRefs.set(id, refs);
    return refs;
  }

  /**
   * True when this map alone holds the extent in memory *and* in the last commit, so its bytes may be overwritten
   * in place. An extent whose count fell to 1 since the commit is still mapped by another image on disk; writing it
   * in place would put this image's unflushed data into that image after a crash.
   */
  extentWritableInPlace(id: number): boolean {
    return this.extentRefs(id) === 1 && !this.#droppedSinceCommit.has(id) && !this.#readPins.has(id);
  }

  /** Marks extent `id` as being read asynchronously; see "Read pins" above. Pair each call with `unpinAfterRead`. */
  pinForRead(id: number): void {
    this.#readPins.set(id, (this.#readPins.get(id) ?? 0) + 1);
  }

  /** Ends one asynchronous read of extent `id`; a released extent whose last pin this was becomes allocatable. */
  unpinAfterRead(id: number): void {
    const pins = this.#readPins.get(id) ?? 0;
    if (pins > 1) {
      this.#readPins.set(id, pins - 1);
      return;
    }
    this.#readPins.delete(id);
    if (this.#freeAfterReads.delete(id)) this.#free.push(id);
  }

  increfExtent(id: number): void {
    this.#extentRefs.set(id, this.extentRefs(id) + 1);
    this.#dirtyExtents.add(id);
  }

  decrefExtent(id: number): void {
    const refs = this.extentRefs(id);
    if (refs <= 0) throw new CorruptError(`Extent ${id} lost a reference it did not have; run 'esan check'.`);
    this.#extentRefs.set(id, refs - 1);
    this.#dirtyExtents.add(id);
    if (refs === 1) {
      this.#liveExtents--;
      this.#pendingFree.push(id);
    } else {
      this.#droppedSinceCommit.add(id);
    }
  }

  /** Extents that `allocateExtent` can hand out right now (released ones still pinned by reads are not among them). */
  allocatableExtents(): number {
    return this.#free.length + (this.#capacityExtents - this.#counters.extentHighWater);
  }

  /** Extents released since the last commit, which a commit would make allocatable. */
  get pendingFreeCount(): number {
    return this.#pendingFree.length;
  }

  /**
   * A new extent with one reference. `fresh` extents come from beyond the high-water mark and read as zeroes;
   * reused ones hold old bytes the caller must overwrite. The caller checks `allocatableExtents` first.
   */
  allocateExtent(): { id: number; fresh: boolean } {
    let id = this.#free.pop();
    let fresh = false;
    if (id === undefined) {
      if (this.#counters.extentHighWater >= this.#capacityExtents) {
        throw new CorruptError("The extent allocator ran past the SAN capacity; this is a bug in the capacity check.");
      }
      id = ++this.#counters.extentHighWater;
      fresh = true;
    } else {
      this.#takenFromFree.push(id);
    }
    this.#extentRefs.set(id, 1);
    this.#dirtyExtents.add(id);
    this.#liveExtents++;
    return { id, fresh };
  }

  /** Writes every change since the last commit; call inside the commit transaction. */
  writeDirty(): void {
    const db = this.#db;
    for (const id of this.#takenFromFree) db.takeFreeExtent.run(id);
    for (const id of this.#dirtyPages) {
      const page = this.#pages.get(id);
      if (!page || page.refs === 0) {
        db.deletePage.run(id);
      } else {
        db.putPage.run(id, page.level, page.refs, trimmedEntries(page.entries));
      }
    }
    for (const id of this.#dirtyExtents) {
      const refs = this.#extentRefs.get(id) ?? 0;
      if (refs === 0) db.deleteExtent.run(id);
      else db.putExtent.run(id, refs);
    }
    for (const id of this.#pendingFree) db.addFreeExtent.run(id);
    db.putSetting.run("extentHighWater", String(this.#counters.extentHighWater));
    db.putSetting.run("nextPageId", String(this.#counters.nextPageId));
  }

  /** Called once the commit is durable: released extents become allocatable, freed pages leave the cache. */
  afterCommit(): void {
    for (const id of this.#dirtyPages) {
      if ((this.#pages.get(id)?.refs ?? 0) === 0) this.#pages.delete(id);
    }
    for (const id of this.#dirtyExtents) {
      if (this.#extentRefs.get(id) === 0) this.#extentRefs.delete(id);
    }
    this.#dirtyPages.clear();
    this.#dirtyExtents.clear();
    this.#takenFromFree = [];
    this.#droppedSinceCommit.clear();
    // Highest id first, so `pop` hands this batch out in ascending order: a sequential writer that reuses the space
    // of a deleted snapshot lands on neighbouring extents, and the file sees long runs rather than scattered chunks.
    this.#pendingFree.sort((a, b) => b - a);
    for (const id of this.#pendingFree) {
      if (this.#readPins.has(id)) this.#freeAfterReads.add(id);
      else this.#free.push(id);
    }
    this.#pendingFree = [];
  }
}

/** Page entries without trailing zeroes: sparse pages cost a few bytes, not 4 KiB. */
function trimmedEntries(entries: Uint32Array): Uint8Array {
  let end = entries.length;
  while (end > 0 && entries[end - 1] === 0) end--;
  return new Uint8Array(entries.buffer, entries.byteOffset, end * 4);
}
