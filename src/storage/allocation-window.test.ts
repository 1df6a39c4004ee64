import fc from "fast-check";
import { afterAll, beforeAll, expect, test } from "vitest";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { San } from "./san.ts";

const CHUNK = 4096;
// 3000 chunks: a two-level map (1024 chunks per leaf), so windows cross leaves and skip missing ones.
const SIZE = 3000 * CHUNK;
let san: San;
let cleanup: () => void;

beforeAll(() => {
  const temp = tempDataDir("esan-allocation-window");
  cleanup = temp.cleanup;
  san = San.create(temp.dir, { capacityBytes: 2 * SIZE, chunkSizeBytes: CHUNK });
  san.createVolumeGroup("vg");
});

afterAll(() => {
  san.close();
  cleanup();
});

test("the ranged query agrees with the whole-image allocation clipped to the window (property)", () => {
  let volume = 0;
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 2999 }), { maxLength: 60 }),
      fc.integer({ min: 0, max: SIZE - 1 }),
      fc.integer({ min: 1, max: SIZE }),
      (chunks, offset, length) => {
        const id = `vg/v${volume++}`;
        san.createVolume({ volumeGroup: "vg", name: id.slice(3), sizeBytes: SIZE });
        for (const chunk of chunks) san.write(id, chunk * CHUNK, Buffer.alloc(512, 1));
        const end = Math.min(offset + length, SIZE);
        const clip = (ranges: { offset: number; length: number }[]): string[] =>
          ranges
            .map((r) => ({ start: Math.max(r.offset, offset), end: Math.min(r.offset + r.length, end) }))
            .filter((r) => r.start < r.end)
            .map((r) => `${r.start}-${r.end}`);
        const windowed = san.allocatedRangesIn(id, offset, length);
        expect(clip(windowed)).toEqual(clip(san.allocatedRanges(id)));
        // Nothing far outside the window: the first and last range may only reach into their own chunks.
        for (const r of windowed) expect(r.offset + r.length > offset - CHUNK && r.offset < end + CHUNK).toBe(true);
        san.deleteVolume(id);
      },
    ),
    { numRuns: 60 },
  );
});

test("an empty window or one past the end has no ranges", () => {
  san.createVolume({ volumeGroup: "vg", name: "edge", sizeBytes: SIZE });
  san.write("vg/edge", 0, Buffer.alloc(CHUNK, 1));
  expect(san.allocatedRangesIn("vg/edge", SIZE, 4096)).toEqual([]);
  expect(san.allocatedRangesIn("vg/edge", 0, 0)).toEqual([]);
  expect(san.allocatedRangesIn("vg/edge", 0, 1)).toEqual([{ offset: 0, length: CHUNK }]);
});
