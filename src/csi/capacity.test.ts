import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { DEFAULT_VOLUME_BYTES, sizeForRange, sizeSatisfies } from "./capacity.ts";
import { CsiError } from "./errors.ts";

const KiB = 1024;
const rules = { chunkSizeBytes: 64 * KiB, sectorSize: 512 };

describe("sizeForRange", () => {
  it.each([
    ["nothing asked: the default size", null, DEFAULT_VOLUME_BYTES],
    ["1 byte: one chunk", { requiredBytes: 1 }, 64 * KiB],
    ["a whole number of chunks stays", { requiredBytes: 128 * KiB }, 128 * KiB],
    ["rounded up to the next chunk", { requiredBytes: 100 * KiB }, 128 * KiB],
    ["a limit below the next chunk: whole sectors instead", { requiredBytes: 1000, limitBytes: 1024 }, 1024],
    ["exact size asked", { requiredBytes: 4096, limitBytes: 4096 }, 4096],
    ["only a limit: the default, capped to whole chunks under it", { limitBytes: 200 * KiB }, 192 * KiB],
    ["only a small limit: whole sectors under it", { limitBytes: 1000 }, 512],
  ])("%s", (_name, range, expected) => {
    expect(sizeForRange(range, rules)).toBe(expected);
  });

  it("grows a clone to its source's size when the range allows it", () => {
    expect(sizeForRange({ requiredBytes: 64 * KiB }, { ...rules, minimumBytes: 1024 * KiB })).toBe(1024 * KiB);
  });

  it.each([
    ["required above limit", { requiredBytes: 2048, limitBytes: 1024 }, status.OUT_OF_RANGE, /must not exceed limit_bytes/],
    ["no sector fits", { requiredBytes: 100, limitBytes: 200 }, status.OUT_OF_RANGE, /No volume size fits/],
    ["source larger than the limit", { limitBytes: 64 * KiB }, status.OUT_OF_RANGE, /source's/],
    ["negative", { requiredBytes: -1 }, status.INVALID_ARGUMENT, /must be a whole number/],
  ])("refuses %s", (_name, range, code, sentence) => {
    const minimumBytes = _name === "source larger than the limit" ? 1024 * KiB : 0;
    let thrown: unknown;
    try {
      sizeForRange(range, { ...rules, minimumBytes });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CsiError);
    expect((thrown as CsiError).code).toBe(code);
    expect((thrown as CsiError).message).toMatch(sentence);
  });
});

describe("sizeSatisfies", () => {
  it("accepts a size inside the range and refuses one outside", () => {
    expect(sizeSatisfies(4096, { requiredBytes: 4096 })).toBe(true);
    expect(sizeSatisfies(4096, { requiredBytes: 1, limitBytes: 4096 })).toBe(true);
    expect(sizeSatisfies(4096, { requiredBytes: 8192 })).toBe(false);
    expect(sizeSatisfies(8192, { limitBytes: 4096 })).toBe(false);
    expect(sizeSatisfies(8192, null)).toBe(true);
  });
});
