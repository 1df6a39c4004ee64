import { expect, test } from "vitest";
import type { NbdExtent } from "./backend.ts";
import { describeExtents } from "./block-status.ts";

const data = (offset: number, length: number): NbdExtent => ({ offset, length, hole: false, zero: false });
const hole = (offset: number, length: number): NbdExtent => ({ offset, length, hole: true, zero: true });

test("clips to the request and merges equal neighbours", () => {
  const result = describeExtents([hole(0, 4096), hole(4096, 4096), data(8192, 8192), hole(16384, 65536)], 2048 * 2, 16384, 512);
  expect(result).toEqual({ lengths: [4096, 8192, 4096], flags: [3, 0, 3] });
});

test("REQ_ONE returns exactly one descriptor no longer than the request", () => {
  expect(describeExtents([data(0, 1 << 20)], 4096, 8192, 512, { reqOne: true })).toEqual({ lengths: [8192], flags: [0] });
  expect(describeExtents([hole(0, 4096), data(4096, 4096)], 0, 8192, 512, { reqOne: true })).toEqual({ lengths: [4096], flags: [3] });
});

test("gaps the backend left out count as allocated data (status 0)", () => {
  expect(describeExtents([hole(4096, 4096)], 0, 12288, 512)).toEqual({ lengths: [4096, 4096, 4096], flags: [0, 3, 0] });
  expect(describeExtents([], 0, 4096, 512)).toEqual({ lengths: [4096], flags: [0] });
});

test("unaligned boundaries move up and the grown descriptor keeps only common state bits", () => {
  const extents: NbdExtent[] = [hole(0, 700), { offset: 700, length: 324, hole: true, zero: false }, data(1024, 3072)];
  expect(describeExtents(extents, 0, 4096, 512)).toEqual({ lengths: [1024, 3072], flags: [1, 0] });
  // A data extent reaching into the rounded-up block makes the whole block data.
  expect(describeExtents([hole(0, 1000), data(1000, 3096)], 0, 4096, 512)).toEqual({ lengths: [4096], flags: [0] });
});

test("caps the number of descriptors", () => {
  const extents = Array.from({ length: 100 }, (_, i) => (i % 2 ? data(i * 512, 512) : hole(i * 512, 512)));
  const result = describeExtents(extents, 0, 51200, 512, { maxDescriptors: 10 });
  expect(result.lengths).toHaveLength(10);
  expect(result.lengths.reduce((a, b) => a + b, 0)).toBe(5120);
});
