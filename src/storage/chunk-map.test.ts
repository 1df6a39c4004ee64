import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { type ImageMap, depthFor, diffChunks, forEachMapped, growTo, leafIndex, lookup, release, share, writableLeaf } from "./chunk-map.ts";
import { MetaDb } from "./metadata.ts";
import { FANOUT, PageStore } from "./page-store.ts";

let db: MetaDb;
let store: PageStore;
let cleanup: () => void;

beforeEach(() => {
  const temp = tempDataDir("esan-map");
  cleanup = temp.cleanup;
  db = new MetaDb(path.join(temp.dir + "-meta.sqlite"));
  store = new PageStore(db, { extentHighWater: 0, nextPageId: 1 }, 1 << 30);
});

afterEach(() => {
  db.close();
  cleanup();
});

/** Maps `chunk` to a new extent in `map`, as a write to a fresh chunk does. */
function mapChunk(map: ImageMap, chunk: number): number {
  const leaf = writableLeaf(store, map, chunk);
  const old = leaf.entries[leafIndex(chunk)]!;
  const { id } = store.allocateExtent();
  if (old !== 0) store.decrefExtent(old);
  leaf.entries[leafIndex(chunk)] = id;
  store.touch(leaf);
  return id;
}

/** A view of the store that counts page reads, to show what an operation touches. */
function counting(): { store: PageStore; reads: () => number } {
  let reads = 0;
  const view = Object.create(store) as PageStore;
  view.page = (id: number) => {
    reads++;
    return store.page(id);
  };
  return { store: view, reads: () => reads };
}

describe("depthFor", () => {
  it.each([
    [1, 0],
    [FANOUT, 0],
    [FANOUT + 1, 1],
    [FANOUT ** 2, 1],
    [FANOUT ** 2 + 1, 2],
    [2 ** 32 - 1, 3],
  ])("%i chunks need depth %i", (chunks, depth) => expect(depthFor(chunks)).toBe(depth));
});

describe("copy-on-write maps", () => {
  it("shares on snapshot and copies only the written path", () => {
    const volume: ImageMap = { root: 0, depth: 2 };
    for (let leaf = 0; leaf < 64; leaf++) mapChunk(volume, leaf * FANOUT * 7 + 3);
    const snapshot = share(store, volume);
    expect(store.page(volume.root).refs).toBe(2);

    const extent = mapChunk(volume, 3);
    // The volume now has its own root, its own level-1 page and its own leaf; everything else is shared.
    expect(volume.root).not.toBe(snapshot.root);
    expect(lookup(store, volume, 3)).toBe(extent);
    expect(lookup(store, snapshot, 3)).not.toBe(extent);
    expect(lookup(store, snapshot, FANOUT * 7 + 3)).toBe(lookup(store, volume, FANOUT * 7 + 3));
    expect(store.page(snapshot.root).refs).toBe(1);
  });

  it("diffs in time proportional to the change, not to the size", () => {
    const base: ImageMap = { root: 0, depth: 2 };
    for (let leaf = 0; leaf < 512; leaf++) mapChunk(base, leaf * FANOUT + (leaf % FANOUT));
    const target = share(store, base);

    const same = counting();
    diffChunks(same.store, base, target, () => expect.unreachable("no chunk differs"));
    expect(same.reads()).toBe(0);

    mapChunk(target, 5 * FANOUT + 9);
    const one = counting();
    const changed: number[] = [];
    diffChunks(one.store, base, target, (chunk) => changed.push(chunk));
    expect(changed).toEqual([5 * FANOUT + 9]);
    // Two roots, two level-1 pages, two leaves: the 511 other leaves are never read.
    expect(one.reads()).toBe(2 * (base.depth + 1));
    const readsForOne = one.reads();

    for (let i = 0; i < 10; i++) mapChunk(target, (100 + i * 20) * FANOUT + 1);
    const eleven = counting();
    const changedMore: number[] = [];
    diffChunks(eleven.store, base, target, (chunk) => changedMore.push(chunk));
    expect(changedMore).toHaveLength(11);
    expect(eleven.reads()).toBeLessThanOrEqual(11 * readsForOne);
  });

  it("maps nothing past what a shallow map covers (no wrap-around)", () => {
    const small: ImageMap = { root: 0, depth: 0 };
    mapChunk(small, 476);
    expect(lookup(store, small, 476)).not.toBe(0);
    expect(lookup(store, small, FANOUT + 476)).toBe(0);
  });

  it("sees a grown map through its old root", () => {
    const small: ImageMap = { root: 0, depth: 0 };
    mapChunk(small, 7);
    const grown = share(store, small);
    growTo(store, grown, 2);
    expect(lookup(store, grown, 7)).toBe(lookup(store, small, 7));
    const differences: number[] = [];
    diffChunks(store, small, grown, (chunk) => differences.push(chunk));
    expect(differences).toEqual([]);
    mapChunk(grown, FANOUT ** 2 + 1);
    diffChunks(store, small, grown, (chunk) => differences.push(chunk));
    expect(differences).toEqual([FANOUT ** 2 + 1]);
  });

  it("releases pages and extents with the last reference", () => {
    const volume: ImageMap = { root: 0, depth: 1 };
    mapChunk(volume, 1);
    mapChunk(volume, FANOUT + 1);
    const snapshot = share(store, volume);
    mapChunk(volume, 1);
    release(store, volume);
    const mapped: number[] = [];
    forEachMapped(store, snapshot, (chunk) => mapped.push(chunk));
    expect(mapped).toEqual([1, FANOUT + 1]);
    expect(store.liveExtents).toBe(2);
    release(store, snapshot);
    expect(store.liveExtents).toBe(0);
    expect(store.pendingFreeCount).toBe(3);
  });

  it("hands out a committed batch of freed extents lowest first, so a sequential rewrite lands on neighbouring extents", () => {
    const volume: ImageMap = { root: 0, depth: 1 };
    const first = Array.from({ length: 8 }, (_, chunk) => mapChunk(volume, chunk));
    const snapshot = share(store, volume);
    for (let chunk = 0; chunk < 8; chunk++) mapChunk(volume, chunk);
    // The snapshot goes, in chunk order; the commit makes its extents allocatable.
    release(store, snapshot);
    db.transaction(() => store.writeDirty());
    store.afterCommit();
    const reused = Array.from({ length: 8 }, () => store.allocateExtent());
    expect(reused.map((e) => e.id)).toEqual(first);
    expect(reused.every((e) => !e.fresh)).toBe(true);
  });
});
