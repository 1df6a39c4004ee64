import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeClock, tempDataDir } from "../../../test/support/temp-dir.ts";
import { EsanError } from "../errors.ts";
import { San } from "../san.ts";
import { DirectoryStore, type DurableStore } from "./store.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const chunk = 64 * KiB;

/**
 * The real DirectoryStore with a pause: while `paused`, every get and put waits. Tests use it to hold an export or
 * a hydration at a known point; every byte still goes through the real store.
 */
class PausableStore implements DurableStore {
  readonly #inner: DirectoryStore;
  #release: (() => void) | null = null;
  #gate: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.#inner = new DirectoryStore(dir);
  }

  get location(): string {
    return this.#inner.location;
  }

  pause(): void {
    this.#gate = new Promise<void>((resolve) => (this.#release = resolve));
  }

  resume(): void {
    this.#release?.();
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    await this.#gate;
    return this.#inner.put(key, data);
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Buffer> {
    await this.#gate;
    return this.#inner.get(key, range);
  }

  list(prefix: string): Promise<string[]> {
    return this.#inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(key);
  }
}

function code(err: unknown): string {
  return err instanceof EsanError ? err.code : `not an EsanError: ${String(err)}`;
}

let dir: string;
let cleanup: () => void;
let clock: FakeClock;
let stores: Map<string, PausableStore>;
let san: San;

function storeAt(location: string): PausableStore {
  let store = stores.get(location);
  if (!store) stores.set(location, (store = new PausableStore(location)));
  return store;
}

function open(dataDir: string, create: boolean): San {
  const env = { now: clock.now, openDurableStore: storeAt };
  return create ? San.create(dataDir, { capacityBytes: 16 * GiB }, env) : San.open(dataDir, env);
}

function storeOf(san: San): PausableStore {
  return storeAt(path.resolve(san.dataDir, "durable-store"));
}

beforeEach(() => {
  ({ dir, cleanup } = tempDataDir("esan-durable"));
  clock = new FakeClock();
  stores = new Map();
  san = open(dir, true);
  san.createVolumeGroup("vg1");
  san.createVolume({ volumeGroup: "vg1", name: "db", sizeBytes: 4 * GiB });
});

afterEach(() => {
  san.close();
  cleanup();
});

function pattern(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

describe("export", () => {
  it("stores the first member in full and later ones as the change, O(changed)", async () => {
    san.write("vg1/db", 0, pattern(1, 8 * MiB));
    const first = san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    expect(first.completionPercent).toBeLessThan(100);
    expect(await san.waitForDiskSnapshot("d1")).toMatchObject({ completionPercent: 100, incremental: false, usedBytes: 8 * MiB, sizeBytes: 4 * GiB });

    // 1% of the 4 GiB volume, at an unaligned offset: the second member holds exactly those chunks.
    const onePercent = Math.floor((4 * GiB) / 100);
    const offset = 100 * MiB + 512;
    san.write("vg1/db", offset, pattern(2, onePercent));
    san.exportDiskSnapshot({ name: "d2", sourceId: "vg1/db" });
    const second = await san.waitForDiskSnapshot("d2");
    const chunks = Math.ceil((offset + onePercent) / chunk) - Math.floor(offset / chunk);
    expect(second).toMatchObject({ incremental: true, usedBytes: chunks * chunk, completionPercent: 100, sourceResourceId: "vg1/db" });
    expect(await san.diffDiskSnapshots("d1", "d2")).toMatchObject({ changedBytes: chunks * chunk });
  });

  it("says how far a member got before it is ready, and refuses to use it until then", async () => {
    san.write("vg1/db", 0, pattern(1, 32 * MiB));
    storeOf(san).pause();
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    let caught: unknown;
    try {
      san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    } catch (err) {
      caught = err;
    }
    expect(code(caught)).toBe("FailedPrecondition");
    expect((caught as Error).message).toMatch(/^Disk snapshot d1 is not ready, \d+% copied\./);
    storeOf(san).resume();
    await san.waitForDiskSnapshot("d1");
    expect(san.getDiskSnapshot("d1").completionPercent).toBe(100);
  });

  it("survives deletion of its source volume, its snapshots and the volume group", async () => {
    san.write("vg1/db", 0, pattern(3, MiB));
    san.createSnapshot({ volumeGroup: "vg1", name: "s1", sourceVolumeId: "vg1/db" });
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/s1" });
    await san.waitForDiskSnapshot("d1");
    san.deleteSnapshot("vg1/s1");
    san.deleteVolume("vg1/db");
    san.deleteVolumeGroup("vg1");
    san.createVolumeGroup("vg2");
    san.createVolume({ volumeGroup: "vg2", name: "back", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    await san.waitForHydration("vg2/back");
    expect(san.read("vg2/back", 0, MiB).equals(pattern(3, MiB))).toBe(true);
  });
});

describe("restore", () => {
  it("reads correctly at 0% hydration and keeps its own writes through hydration", async () => {
    san.write("vg1/db", 0, pattern(4, 4 * MiB));
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("d1");
    storeOf(san).pause();
    const restored = san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    expect(restored.hydration).toMatchObject({ state: "hydrating", completionPercent: 0, diskSnapshot: "d1" });
    expect(restored.creationData).toMatchObject({ kind: "diskSnapshot", sourceId: "d1" });
    expect(code(catchSync(() => san.read("vg1/r", 0, 1)))).toBe("FailedPrecondition");

    // The read does not overlap the writes racing it (concurrent overlapping I/O has no defined order).
    const reading = san.readAsync("vg1/r", 6 * chunk + 100, 2 * MiB);
    const writing = san.writeAsync("vg1/r", chunk + 10, Buffer.from("user data"));
    const fullChunk = san.writeAsync("vg1/r", 3 * chunk, Buffer.alloc(chunk, 0xee));
    const zeroing = san.writeZeroesAsync("vg1/r", 5 * chunk, chunk);
    expect(san.getVolume("vg1/r").hydration?.completionPercent).toBe(0);
    storeOf(san).resume();
    expect((await reading).equals(pattern(4, 4 * MiB).subarray(6 * chunk + 100, 6 * chunk + 100 + 2 * MiB))).toBe(true);
    await Promise.all([writing, fullChunk, zeroing]);

    await san.waitForHydration("vg1/r");
    expect(san.getVolume("vg1/r").hydration).toMatchObject({ state: "complete", completionPercent: 100 });
    const expected = pattern(4, 4 * MiB);
    Buffer.from("user data").copy(expected, chunk + 10);
    expected.fill(0xee, 3 * chunk, 4 * chunk);
    expected.fill(0, 5 * chunk, 6 * chunk);
    expect(san.read("vg1/r", 0, 4 * MiB).equals(expected)).toBe(true);
    expect(san.check().ok).toBe(true);
  });

  it("refuses to delete the disk snapshot while a volume hydrates from it, naming the volume", async () => {
    san.write("vg1/db", 0, pattern(5, MiB));
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("d1");
    storeOf(san).pause();
    san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    const refused = await san.deleteDiskSnapshot("d1").catch((err: unknown) => err);
    expect(code(refused)).toBe("FailedPrecondition");
    expect((refused as Error).message).toContain("volume vg1/r is still hydrating");
    storeOf(san).resume();
    await san.waitForHydration("vg1/r");
    await san.deleteDiskSnapshot("d1");
    expect(san.read("vg1/r", 0, MiB).equals(pattern(5, MiB))).toBe(true);
  });

  it("inherits the sector size and refuses a 4096-sector disk snapshot into 512-byte sectors", async () => {
    san.createVolume({ volumeGroup: "vg1", name: "big", sizeBytes: 64 * MiB, sectorSize: 4096 });
    san.exportDiskSnapshot({ name: "d4k", sourceId: "vg1/big" });
    await san.waitForDiskSnapshot("d4k");
    const refused = catchSync(() =>
      san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 64 * MiB, sectorSize: 512, source: { kind: "diskSnapshot", id: "d4k" } }),
    );
    expect(code(refused)).toBe("InvalidArgument");
    expect((refused as Error).message).toContain("sector size is inherited");
    const restored = san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 64 * MiB, source: { kind: "diskSnapshot", id: "d4k" } });
    expect(restored.sectorSize).toBe(4096);
  });

  it("refuses to share a hydrating volume's map, and reports it fully allocated", async () => {
    san.write("vg1/db", 0, pattern(8, MiB));
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("d1");
    storeOf(san).pause();
    san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    const refusals = [
      () => san.createSnapshot({ volumeGroup: "vg1", name: "s", sourceVolumeId: "vg1/r" }),
      () => san.createGroupSnapshot({ volumeGroup: "vg1", name: "g", volumeIds: ["vg1/r"] }),
      () => san.createVolume({ volumeGroup: "vg1", name: "c", sizeBytes: 4 * GiB, source: { kind: "volume", id: "vg1/r" } }),
      () => san.exportDiskSnapshot({ name: "d2", sourceId: "vg1/r" }),
      () => san.diff("vg1/db", "vg1/r"),
    ];
    for (const refusal of refusals) {
      const err = catchSync(refusal);
      expect(code(err)).toBe("FailedPrecondition");
      expect((err as Error).message).toContain("still hydrating from disk snapshot d1");
    }
    expect(san.allocatedRanges("vg1/r")).toEqual([{ offset: 0, length: 4 * GiB }]);
    storeOf(san).resume();
    await san.waitForHydration("vg1/r");
    expect(san.createSnapshot({ volumeGroup: "vg1", name: "s", sourceVolumeId: "vg1/r" }).sizeBytes).toBe(4 * GiB);
    expect(san.allocatedRanges("vg1/r")).toEqual([{ offset: 0, length: MiB }]);
  });

  it("never hydrates a new volume that reuses a deleted restored volume's name", async () => {
    san.write("vg1/db", 0, Buffer.alloc(MiB, 7));
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("d1");
    storeOf(san).pause();
    san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    san.deleteVolume("vg1/r");
    san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB });
    storeOf(san).resume();
    await san.waitForHydration("vg1/r");
    // Asserting that nothing happens needs time for a stale job to act: give the store's reads 500 ms.
    await new Promise<void>((resolve) => setTimeout(resolve, 500));
    expect(san.getVolume("vg1/r").hydration).toBeNull();
    expect(san.read("vg1/r", 0, MiB).equals(Buffer.alloc(MiB))).toBe(true);
  });

  it("resumes hydration after a reopen", async () => {
    san.write("vg1/db", 0, pattern(6, 8 * MiB));
    san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("d1");
    storeOf(san).pause();
    san.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d1" } });
    san.close();
    storeOf(san).resume();
    san = open(dir, false);
    expect(san.getVolume("vg1/r").hydration?.state).toBe("hydrating");
    await san.waitForHydration("vg1/r");
    expect(san.read("vg1/r", 0, 8 * MiB).equals(pattern(6, 8 * MiB))).toBe(true);
  });
});

describe("families", () => {
  it("folds a deleted member into the next one, keeping every other member restorable", async () => {
    const states: Buffer[] = [];
    for (let i = 0; i < 3; i++) {
      san.write("vg1/db", i * 2 * MiB, pattern(10 + i, 3 * MiB));
      if (i === 1) san.writeZeroes("vg1/db", 0, MiB);
      states.push(san.read("vg1/db", 0, 8 * MiB));
      san.exportDiskSnapshot({ name: `d${i}`, sourceId: "vg1/db" });
      clock.advance(60_000);
    }
    await san.waitForDiskSnapshot("d2");
    await san.deleteDiskSnapshot("d1");
    expect(san.listDiskSnapshots().map((d) => d.name)).toEqual(["d0", "d2"]);
    expect(san.getDiskSnapshot("d2").incremental).toBe(true);
    await san.deleteDiskSnapshot("d0");
    expect(san.getDiskSnapshot("d2")).toMatchObject({ incremental: false, previousMemberId: null });
    san.createVolume({ volumeGroup: "vg1", name: "r2", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d2" } });
    await san.waitForHydration("vg1/r2");
    const got = san.read("vg1/r2", 0, 8 * MiB);
    const firstBad = got.findIndex((byte, i) => byte !== states[2]![i]);
    expect(firstBad).toBe(-1);
  });

  it("diffs members of one family and refuses members of two", async () => {
    san.createVolume({ volumeGroup: "vg1", name: "other", sizeBytes: MiB });
    san.exportDiskSnapshot({ name: "a", sourceId: "vg1/db" });
    san.write("vg1/db", 5 * chunk, Buffer.alloc(10));
    san.exportDiskSnapshot({ name: "b", sourceId: "vg1/db" });
    san.exportDiskSnapshot({ name: "o", sourceId: "vg1/other" });
    await Promise.all(["a", "b", "o"].map((n) => san.waitForDiskSnapshot(n)));
    expect(await san.diffDiskSnapshots("b", "a")).toEqual({ chunkSizeBytes: chunk, changedBytes: chunk, ranges: [{ offset: 5 * chunk, length: chunk }] });
    const refused = await san.diffDiskSnapshots("a", "o").catch((err: unknown) => err);
    expect(code(refused)).toBe("InvalidArgument");
    expect((refused as Error).message).toContain("different families");
  });

  it("starts a new family when the volume is re-created under the same name", async () => {
    san.exportDiskSnapshot({ name: "a", sourceId: "vg1/db" });
    await san.waitForDiskSnapshot("a");
    san.deleteVolume("vg1/db");
    san.createVolume({ volumeGroup: "vg1", name: "db", sizeBytes: 4 * GiB });
    san.exportDiskSnapshot({ name: "b", sourceId: "vg1/db" });
    const b = await san.waitForDiskSnapshot("b");
    expect(b.incremental).toBe(false);
    expect(b.sourceUniqueId).not.toBe(san.getDiskSnapshot("a").sourceUniqueId);
  });
});

describe("limits", () => {
  it("caps disk snapshot creations per window with the instant tier's codes", async () => {
    for (let i = 0; i < 7; i++) san.exportDiskSnapshot({ name: `d${i}`, sourceId: "vg1/db" });
    const refused = catchSync(() => san.exportDiskSnapshot({ name: "d7", sourceId: "vg1/db" }));
    expect(code(refused)).toBe("SnapshotOperationRateExceeded");
    expect((refused as Error).message).toContain("vg1/db");
    clock.advance(5 * 60_000);
    expect(san.exportDiskSnapshot({ name: "d7", sourceId: "vg1/db" }).name).toBe("d7");
    await san.waitForDiskSnapshot("d7");
  });

  it("caps members per source", async () => {
    san.close();
    const small = San.create(`${dir}-small`, { capacityBytes: GiB, limits: { maxDiskSnapshotsPerSource: 2, snapshotRateCount: 100 } });
    try {
      small.createVolumeGroup("vg1");
      small.createVolume({ volumeGroup: "vg1", name: "v", sizeBytes: MiB });
      small.exportDiskSnapshot({ name: "a", sourceId: "vg1/v" });
      small.exportDiskSnapshot({ name: "b", sourceId: "vg1/v" });
      expect(code(catchSync(() => small.exportDiskSnapshot({ name: "c", sourceId: "vg1/v" })))).toBe("SnapshotCountExceeded");
      await small.waitForDiskSnapshot("b");
      await small.deleteDiskSnapshot("a");
      expect(small.exportDiskSnapshot({ name: "c", sourceId: "vg1/v" }).name).toBe("c");
      await small.waitForDiskSnapshot("c");
    } finally {
      small.close();
      san = open(dir, false);
    }
  });
});

describe("copy between SANs", () => {
  it("sends the first member in full, then only the new deltas", async () => {
    const target = open(`${dir}-target`, true);
    try {
      san.write("vg1/db", 0, pattern(7, 4 * MiB));
      san.exportDiskSnapshot({ name: "d1", sourceId: "vg1/db" });
      const family = (await san.waitForDiskSnapshot("d1")).sourceUniqueId;
      const first = await san.copyDiskSnapshotFamily(family, target);
      expect(first.membersCopied).toEqual(["d1"]);
      expect(first.bytesMoved).toBeGreaterThanOrEqual(4 * MiB);

      san.write("vg1/db", MiB, Buffer.alloc(chunk, 9));
      san.exportDiskSnapshot({ name: "d2", sourceId: "vg1/db" });
      await san.waitForDiskSnapshot("d2");
      const second = await san.copyDiskSnapshotFamily(family, target);
      expect(second.membersCopied).toEqual(["d2"]);
      expect(second.bytesMoved).toBeGreaterThanOrEqual(chunk);
      expect(second.bytesMoved).toBeLessThan(chunk + 64 * KiB); // one chunk plus a small manifest
      expect((await san.copyDiskSnapshotFamily(family, target)).bytesMoved).toBe(0);

      target.createVolumeGroup("vg1");
      target.createVolume({ volumeGroup: "vg1", name: "r", sizeBytes: 4 * GiB, source: { kind: "diskSnapshot", id: "d2" } });
      await target.waitForHydration("vg1/r");
      const expected = pattern(7, 4 * MiB);
      expected.fill(9, MiB, MiB + chunk);
      expect(target.read("vg1/r", 0, 4 * MiB).equals(expected)).toBe(true);
    } finally {
      target.close();
    }
  });
});

function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return new Error("expected a throw");
}
