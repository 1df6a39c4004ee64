// Unit tests of the flat reference model the engine's property test compares against.
import { describe, expect, it } from "vitest";
import { checkShape, chunksOf, coveredChunks, ModelRefusal, ReferenceModel } from "./reference-model.ts";

const CHUNK = 4096;

function refusalCode(action: () => void): string | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof ModelRefusal) return error.code;
    throw error;
  }
  return undefined;
}

describe("ReferenceModel", () => {
  it("starts a volume as zeroes with every chunk at generation 0", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 10 * 512);
    expect(model.read("vg/a", 0, 5120)).toEqual(new Uint8Array(5120));
    expect(model.get("vg/a").gens).toEqual([0, 0]);
    expect(model.nonZeroChunks("vg/a")).toEqual([]);
  });

  it("writes bytes and gives every touched chunk a fresh generation", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 4 * CHUNK);
    model.write("vg/a", CHUNK - 1, new Uint8Array([7, 8]));
    expect(model.read("vg/a", CHUNK - 2, 4)).toEqual(new Uint8Array([0, 7, 8, 0]));
    const [g0, g1, g2, g3] = model.get("vg/a").gens;
    expect(g0).toBeGreaterThan(0);
    expect(g1).toBeGreaterThan(0);
    expect(g0).not.toBe(g1);
    expect([g2, g3]).toEqual([0, 0]);
    model.write("vg/a", 0, new Uint8Array([1]));
    expect(model.genAt("vg/a", 0)).toBeGreaterThan(g1 ?? 0);
    expect(model.nonZeroChunks("vg/a")).toEqual([0, 1]);
  });

  it("reads zero and trimmed ranges back as zeroes and still counts them as mutations", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 2 * CHUNK);
    model.write("vg/a", 0, new Uint8Array(2 * CHUNK).fill(9));
    const before = model.get("vg/a").gens.slice();
    model.zero("vg/a", 10, 20);
    model.trim("vg/a", CHUNK, CHUNK);
    expect(model.read("vg/a", 8, 24)).toEqual(new Uint8Array([9, 9, ...new Array<number>(20).fill(0), 9, 9]));
    expect(model.read("vg/a", CHUNK, CHUNK)).toEqual(new Uint8Array(CHUNK));
    expect(model.get("vg/a").gens[0]).not.toBe(before[0]);
    expect(model.get("vg/a").gens[1]).not.toBe(before[1]);
    expect(model.nonZeroChunks("vg/a")).toEqual([0]);
  });

  it("snapshots copy bytes and generations, then diverge only where the volume is written", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 3 * CHUNK);
    model.write("vg/a", 0, new Uint8Array(3 * CHUNK).fill(1));
    model.snapshot("vg/s", "vg/a");
    expect(model.differingChunks("vg/a", "vg/s")).toEqual([]);
    expect(model.get("vg/s").gens).toEqual(model.get("vg/a").gens);
    model.write("vg/a", CHUNK + 5, new Uint8Array([2]));
    expect(model.differingChunks("vg/a", "vg/s")).toEqual([1]);
    expect(model.genAt("vg/a", 1)).not.toBe(model.genAt("vg/s", 1));
    expect(model.genAt("vg/a", 0)).toBe(model.genAt("vg/s", 0));
    expect(model.read("vg/s", CHUNK + 5, 1)).toEqual(new Uint8Array([1]));
  });

  it("clones zero-extend to a bigger size, with generation 0 beyond the source", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 3 * 512);
    model.write("vg/a", 0, new Uint8Array(3 * 512).fill(3));
    model.clone("vg/b", "vg/a", 2 * CHUNK);
    expect(model.read("vg/b", 3 * 512 - 1, 2)).toEqual(new Uint8Array([3, 0]));
    expect(model.get("vg/b").gens).toEqual([model.genAt("vg/a", 0), 0]);
    expect(model.differingChunks("vg/a", "vg/b")).toEqual([]);
    expect(refusalCode(() => model.clone("vg/c", "vg/b", CHUNK))).toBe("FailedPrecondition");
    expect(model.images.has("vg/c")).toBe(false);
  });

  it("resizes by growing with zeroes and refuses to shrink", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", 512);
    model.write("vg/a", 511, new Uint8Array([5]));
    model.resize("vg/a", CHUNK + 512);
    expect(model.read("vg/a", 510, 3)).toEqual(new Uint8Array([0, 5, 0]));
    expect(model.get("vg/a").gens.length).toBe(2);
    expect(model.genAt("vg/a", 1)).toBe(0);
    expect(refusalCode(() => model.resize("vg/a", 512))).toBe("FailedPrecondition");
    expect(model.get("vg/a").bytes.length).toBe(CHUNK + 512);
  });

  it("keeps snapshots of a deleted volume", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", CHUNK);
    model.write("vg/a", 0, new Uint8Array([4]));
    model.snapshot("vg/s", "vg/a");
    model.delete("vg/a", "volume");
    expect(model.ids("volume")).toEqual([]);
    expect(model.ids("snapshot")).toEqual(["vg/s"]);
    expect(model.read("vg/s", 0, 1)).toEqual(new Uint8Array([4]));
    expect(refusalCode(() => model.read("vg/a", 0, 1))).toBe("NotFound");
  });

  it("refuses I/O outside an image and writes to snapshots without changing anything", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", CHUNK);
    model.snapshot("vg/s", "vg/a");
    expect(refusalCode(() => model.write("vg/a", CHUNK - 1, new Uint8Array(2).fill(1)))).toBe("OutOfRange");
    expect(refusalCode(() => model.zero("vg/a", CHUNK, 1))).toBe("OutOfRange");
    expect(refusalCode(() => model.read("vg/a", 1, CHUNK))).toBe("OutOfRange");
    expect(refusalCode(() => model.write("vg/s", 0, new Uint8Array([1])))).toBe("ReadOnly");
    expect(refusalCode(() => model.trim("vg/s", 0, 1))).toBe("ReadOnly");
    expect(refusalCode(() => model.createVolume("vg/s", CHUNK))).toBe("AlreadyExists");
    expect(model.nonZeroChunks("vg/a")).toEqual([]);
    expect(model.get("vg/a").gens).toEqual([0]);
  });

  it("compares a shorter image as zero-extended", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", CHUNK);
    model.createVolume("vg/b", 3 * CHUNK);
    model.write("vg/b", 2 * CHUNK, new Uint8Array([0]));
    expect(model.differingChunks("vg/a", "vg/b")).toEqual([]);
    model.write("vg/b", CHUNK, new Uint8Array([1]));
    expect(model.differingChunks("vg/b", "vg/a")).toEqual([1]);
  });

  it("saves and restores one image", () => {
    const model = new ReferenceModel(CHUNK);
    model.createVolume("vg/a", CHUNK);
    const saved = model.saveImage("vg/a");
    model.write("vg/a", 0, new Uint8Array([1]));
    model.restoreImage("vg/a", saved);
    expect(model.saveImage("vg/a")).toEqual({ bytes: Buffer.alloc(CHUNK), gens: [0] });
  });

  it("refuses to provision more volume bytes than the capacity, counting only volumes", () => {
    const model = new ReferenceModel(CHUNK, 4 * CHUNK);
    model.createVolume("vg/a", 2 * CHUNK);
    model.snapshot("vg/s", "vg/a");
    model.clone("vg/b", "vg/s", 2 * CHUNK);
    expect(model.provisionedBytes()).toBe(4 * CHUNK);
    expect(refusalCode(() => model.createVolume("vg/c", 512))).toBe("CapacityExceeded");
    expect(refusalCode(() => model.resize("vg/a", 2 * CHUNK + 512))).toBe("CapacityExceeded");
    expect(refusalCode(() => model.clone("vg/c", "vg/a", 2 * CHUNK))).toBe("CapacityExceeded");
    model.delete("vg/b", "volume");
    model.resize("vg/a", 4 * CHUNK);
    expect(model.ids("volume")).toEqual(["vg/a"]);
  });
});

describe("range helpers", () => {
  it("lists the chunks a byte range or a list of ranges touches", () => {
    expect(chunksOf(CHUNK, CHUNK - 1, 2)).toEqual([0, 1]);
    expect(chunksOf(CHUNK, 2 * CHUNK, CHUNK)).toEqual([2]);
    expect([...coveredChunks(CHUNK, [{ offset: 0, length: CHUNK }, { offset: 3 * CHUNK, length: 512 }])]).toEqual([0, 3]);
  });

  it("accepts sorted, coalesced, chunk-aligned ranges clipped at the end and rejects the rest", () => {
    expect(() => checkShape([{ offset: 0, length: CHUNK }, { offset: 2 * CHUNK, length: 512 }], CHUNK, 2 * CHUNK + 512, "ok")).not.toThrow();
    expect(() => checkShape([{ offset: 0, length: CHUNK }, { offset: CHUNK, length: CHUNK }], CHUNK, 4 * CHUNK, "adjacent")).toThrow(/bad range/);
    expect(() => checkShape([{ offset: 2 * CHUNK, length: CHUNK }, { offset: 0, length: CHUNK }], CHUNK, 4 * CHUNK, "unsorted")).toThrow(/bad range/);
    expect(() => checkShape([{ offset: 512, length: CHUNK }], CHUNK, 4 * CHUNK, "unaligned")).toThrow(/bad range/);
    expect(() => checkShape([{ offset: 0, length: 512 }], CHUNK, 4 * CHUNK, "short")).toThrow(/bad range/);
    expect(() => checkShape([{ offset: 0, length: 2 * CHUNK }], CHUNK, CHUNK + 512, "past end")).toThrow(/bad range/);
  });
});
