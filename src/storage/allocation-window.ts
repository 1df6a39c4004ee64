// Which chunks of one window of an image are mapped: the ranged allocation query behind NBD BLOCK_STATUS.
import type { ImageMap } from "./chunk-map.ts";
import { FANOUT, FANOUT_BITS, type PageStore } from "./page-store.ts";

/**
 * Calls `visit(chunk)` for every mapped chunk in [firstChunk, endChunk), in order. Only the pages that cover the
 * window are read, and an unmapped entry above the leaves skips its whole span, so the cost follows the window and
 * what is mapped in it, not the size of the image.
 */
export function forEachMappedInWindow(store: PageStore, map: ImageMap, firstChunk: number, endChunk: number, visit: (chunk: number) => void): void {
  const walk = (id: number, level: number, spanStart: number): void => {
    const entries = store.page(id).entries;
    const childSpan = 2 ** (FANOUT_BITS * level);
    const from = Math.max(0, Math.floor((firstChunk - spanStart) / childSpan));
    const to = Math.min(FANOUT, Math.ceil((endChunk - spanStart) / childSpan));
    for (let i = from; i < to; i++) {
      const entry = entries[i]!;
      if (entry === 0) continue;
      const childStart = spanStart + i * childSpan;
      if (level === 0) visit(childStart);
      else walk(entry, level - 1, childStart);
    }
  };
  if (map.root !== 0 && firstChunk < endChunk) walk(map.root, map.depth, 0);
}
