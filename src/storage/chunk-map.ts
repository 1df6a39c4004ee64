// Copy-on-write radix maps from chunk index to extent: lookup, path copying, sharing, walks and O(changed) diffs.
import { FANOUT, FANOUT_BITS, type Page, type PageStore } from "./page-store.ts";

/**
 * An image's map: a root page at level `depth` (0 = empty image). The image holds one reference to the root.
 * Pages are shared between a volume, its snapshots and its clones; a page with more than one reference is
 * copied before it changes, so snapshot and clone cost O(1) and a first write copies only the path it touches.
 */
export interface ImageMap {
  root: number;
  depth: number;
}

/** Smallest depth whose tree covers `chunkCount` chunks: depth d covers FANOUT^(d+1). */
export function depthFor(chunkCount: number): number {
  let depth = 0;
  let covered = FANOUT;
  while (covered < chunkCount) {
    covered *= FANOUT;
    depth++;
  }
  return depth;
}

function indexAt(chunk: number, level: number): number {
  return (chunk >>> (FANOUT_BITS * level)) & (FANOUT - 1);
}

/** The extent that holds `chunk`, or 0 when it is unmapped. */
export function lookup(store: PageStore, map: ImageMap, chunk: number): number {
  // Past what the tree covers nothing is mapped; the index arithmetic below would wrap around instead.
  if (chunk >= FANOUT ** (map.depth + 1)) return 0;
  let id = map.root;
  for (let level = map.depth; level >= 0 && id !== 0; level--) {
    id = store.page(id).entries[indexAt(chunk, level)] ?? 0;
  }
  return id;
}

/** True when `chunk` is mapped and this image alone holds every page on its path and may overwrite the extent in place. */
export function isExclusive(store: PageStore, map: ImageMap, chunk: number): boolean {
  if (chunk >= FANOUT ** (map.depth + 1)) return false;
  let id = map.root;
  for (let level = map.depth; level >= 0; level--) {
    if (id === 0) return false;
    const page = store.page(id);
    if (page.refs > 1) return false;
    id = page.entries[indexAt(chunk, level)] ?? 0;
  }
  return id !== 0 && store.extentWritableInPlace(id);
}

/** Adds levels above the root until the map has `depth`; the old root becomes entry 0 of the new one. */
export function growTo(store: PageStore, map: ImageMap, depth: number): void {
  if (map.root === 0) {
    map.depth = Math.max(map.depth, depth);
    return;
  }
  while (map.depth < depth) {
    const top = store.newPage(map.depth + 1);
    // The image's reference to the old root moves into the new root's entry: no count changes.
    top.entries[0] = map.root;
    map.root = top.id;
    map.depth++;
  }
}

/** A second reference to the same map, for a snapshot or clone. */
export function share(store: PageStore, map: ImageMap): ImageMap {
  store.increfPage(map.root);
  return { root: map.root, depth: map.depth };
}

/** Drops the image's reference; pages and extents no other image holds are released. */
export function release(store: PageStore, map: ImageMap): void {
  store.decrefPage(map.root);
  map.root = 0;
}

/** The leaf page for `chunk`, made private to this image: shared pages on the path are copied, missing ones made. */
export function writableLeaf(store: PageStore, map: ImageMap, chunk: number): Page {
  let page: Page;
  if (map.root === 0) {
    page = store.newPage(map.depth);
    map.root = page.id;
  } else {
    page = store.page(map.root);
    if (page.refs > 1) {
      page = store.copyOnWrite(map.root);
      map.root = page.id;
    }
  }
  for (let level = map.depth; level > 0; level--) {
    const index = indexAt(chunk, level);
    const childId = page.entries[index] ?? 0;
    let child: Page;
    if (childId === 0) {
      child = store.newPage(level - 1);
    } else {
      child = store.page(childId);
      if (child.refs <= 1) {
        page = child;
        continue;
      }
      child = store.copyOnWrite(childId);
    }
    page.entries[index] = child.id;
    store.touch(page);
    page = child;
  }
  return page;
}

/** Position of `chunk` inside its leaf page. */
export function leafIndex(chunk: number): number {
  return chunk & (FANOUT - 1);
}

/** Calls `visit(chunk, extent)` for every mapped chunk, in chunk order. */
export function forEachMapped(store: PageStore, map: ImageMap, visit: (chunk: number, extent: number) => void): void {
  const walk = (id: number, level: number, firstChunk: number): void => {
    const entries = store.page(id).entries;
    const span = FANOUT ** level;
    for (let i = 0; i < FANOUT; i++) {
      const entry = entries[i]!;
      if (entry === 0) continue;
      if (level === 0) visit(firstChunk + i, entry);
      else walk(entry, level - 1, firstChunk + i * span);
    }
  };
  if (map.root !== 0) walk(map.root, map.depth, 0);
}

/** Chunks held by this image and no other (every page on the path and the extent have one reference). */
export function countExclusiveChunks(store: PageStore, map: ImageMap): number {
  const walk = (id: number): number => {
    const page = store.page(id);
    if (page.refs > 1) return 0;
    let count = 0;
    for (const entry of page.entries) {
      if (entry === 0) continue;
      if (page.level === 0) count += store.extentRefs(entry) === 1 ? 1 : 0;
      else count += walk(entry);
    }
    return count;
  };
  return map.root === 0 ? 0 : walk(map.root);
}

/**
 * Calls `visit(chunk)` for every chunk mapped to different extents in `a` and `b`, in chunk order.
 * Subtrees the two maps share (same page at the same level) are skipped unread, so the cost follows the change.
 */
export function diffChunks(store: PageStore, a: ImageMap, b: ImageMap, visit: (chunk: number) => void): void {
  const depth = Math.max(a.depth, b.depth);
  const empty = new Uint32Array(FANOUT);
  // A map shallower than `depth` is seen through virtual pages whose entry 0 is the real root.
  const entriesAt = (id: number, level: number): Uint32Array => {
    if (id === 0) return empty;
    const page = store.page(id);
    if (page.level === level) return page.entries;
    const virtual = new Uint32Array(FANOUT);
    virtual[0] = id;
    return virtual;
  };
  const walk = (idA: number, idB: number, level: number, firstChunk: number): void => {
    const span = FANOUT ** level;
    const entriesA = entriesAt(idA, level);
    const entriesB = entriesAt(idB, level);
    for (let i = 0; i < FANOUT; i++) {
      const ca = entriesA[i]!;
      const cb = entriesB[i]!;
      if (ca === cb) continue;
      if (level === 0) visit(firstChunk + i);
      else walk(ca, cb, level - 1, firstChunk + i * span);
    }
  };
  if (a.root === b.root && a.depth === b.depth) return;
  walk(a.root, b.root, depth, 0);
}
