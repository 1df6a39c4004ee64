// Turns a backend's extents into BLOCK_STATUS descriptors: clipped, gap-filled, block-aligned, merged and capped.
import type { NbdExtent } from "./backend.ts";
import { NBD_STATE_HOLE, NBD_STATE_ZERO } from "./constants.ts";

/** Descriptors as two parallel arrays, ready for the wire. */
export interface Descriptors {
  lengths: number[];
  flags: number[];
}

/** Most descriptors in one reply; the spec lets a server describe less than asked, and clients ask again. */
export const MAX_DESCRIPTORS = 64 * 1024;

function stateOf(extent: NbdExtent): number {
  return (extent.hole ? NBD_STATE_HOLE : 0) | (extent.zero ? NBD_STATE_ZERO : 0);
}

/**
 * Describes [offset, offset+length) from `extents` (any order, possibly overlapping the range's edges). Gaps the
 * backend left out are reported as status 0 (allocated data), which the spec says is always safe. A boundary that is
 * not a multiple of `alignment` is moved up to the next multiple, and the descriptor that grows keeps only the state
 * bits true of everything it now covers (HOLE and ZERO are claims, so AND is the conservative merge).
 */
export function describeExtents(
  extents: readonly NbdExtent[],
  offset: number,
  length: number,
  alignment: number,
  options: { reqOne?: boolean; maxDescriptors?: number } = {},
): Descriptors {
  const end = offset + length;
  const limit = options.reqOne ? 1 : (options.maxDescriptors ?? MAX_DESCRIPTORS);
  const pieces = clipAndFill(extents, offset, end);
  const lengths: number[] = [];
  const flags: number[] = [];
  let position = offset;
  let i = 0;
  while (position < end && i < pieces.length) {
    let pieceEnd = pieces[i]!.end;
    let state = pieces[i]!.state;
    i++;
    if (pieceEnd < end && pieceEnd % alignment !== 0) {
      const aligned = Math.min(end, Math.ceil(pieceEnd / alignment) * alignment);
      while (i < pieces.length && pieces[i]!.start < aligned) {
        state &= pieces[i]!.state;
        if (pieces[i]!.end > aligned) {
          pieces[i]!.start = aligned;
          break;
        }
        i++;
      }
      pieceEnd = aligned;
    }
    const last = lengths.length - 1;
    if (last >= 0 && flags[last] === state) {
      lengths[last]! += pieceEnd - position;
    } else {
      if (lengths.length === limit) break;
      lengths.push(pieceEnd - position);
      flags.push(state);
    }
    position = pieceEnd;
  }
  return { lengths, flags };
}

interface Piece {
  start: number;
  end: number;
  state: number;
}

/** The extents inside [offset, end), sorted, with holes in the backend's answer filled by status 0. */
function clipAndFill(extents: readonly NbdExtent[], offset: number, end: number): Piece[] {
  const inside = extents
    .filter((e) => e.length > 0 && e.offset < end && e.offset + e.length > offset)
    .sort((a, b) => a.offset - b.offset);
  const pieces: Piece[] = [];
  let position = offset;
  for (const extent of inside) {
    const start = Math.max(extent.offset, position);
    const stop = Math.min(extent.offset + extent.length, end);
    if (stop <= start) continue;
    if (start > position) pieces.push({ start: position, end: start, state: 0 });
    pieces.push({ start, end: stop, state: stateOf(extent) });
    position = stop;
  }
  if (position < end) pieces.push({ start: position, end, state: 0 });
  return pieces;
}
