// Races and store failures of the durable tier that random runs reach only by luck, pinned down with controls on
// the real DirectoryStore: a gate on reads, and one-time failures of a put or a get, as an object store's outage.
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { DirectoryStore, type DurableStore } from "../src/storage/durable/store.ts";
import { EsanError } from "../src/storage/errors.ts";
import { San } from "../src/storage/san.ts";
import type { DiskSnapshotInfo } from "../src/storage/types.ts";
import { attempt, checkEngine, codeOf, describeError, sameBytes } from "./support/durable-checks.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const SHM_ROOT = fs.existsSync("/dev/shm") ? "/dev/shm" : "/tmp";
const LIMITS = { snapshotRateCount: 100_000, maxSnapshotsPerVolume: 100_000, maxDiskSnapshotsPerSource: 100_000 };
type Outcome = { ok: true; info: DiskSnapshotInfo } | { ok: false; err: unknown };
let dirCounter = 0;

/**
 * The real DirectoryStore with two controls: a gate on reads of chosen keys (a test holds the hydration of one
 * member at a known point while the rest runs through the real store), and a one-time failure of a put, as an
 * object store's outage would cause.
 */
class ControlledStore implements DurableStore {
  readonly #inner: DirectoryStore;
  #held: ((key: string) => boolean) | null = null;
  #release: () => void = () => undefined;
  #gate: Promise<void> = Promise.resolve();
  #failPut: ((key: string) => boolean) | null = null;
  #failGet: ((key: string) => boolean) | null = null;

  constructor(dir: string) {
    this.#inner = new DirectoryStore(dir);
  }

  get location(): string {
    return this.#inner.location;
  }

  hold(keys: (key: string) => boolean): void {
    this.#held = keys;
    this.#gate = new Promise<void>((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.#held = null;
    this.#release();
  }

  /** The next put of a matching key fails (once) with an I/O error. */
  failNextPut(keys: (key: string) => boolean): void {
    this.#failPut = keys;
  }

  /** The next get of a matching key fails (once) with an I/O error. */
  failNextGet(keys: (key: string) => boolean): void {
    this.#failGet = keys;
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Buffer> {
    if (this.#held?.(key)) await this.#gate;
    if (this.#failGet?.(key)) {
      this.#failGet = null;
      throw Object.assign(new Error(`simulated outage of the store while reading ${key}`), { code: "EIO" });
    }
    return this.#inner.get(key, range);
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    if (this.#failPut?.(key)) {
      this.#failPut = null;
      throw Object.assign(new Error(`simulated outage of the store while writing ${key}`), { code: "EIO" });
    }
    return this.#inner.put(key, data);
  }

  list(prefix: string): Promise<string[]> {
    return this.#inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(key);
  }
}

/** A SAN whose stores are ControlledStores, one per location. */
function controlledSan(dir: string): { san: San; storeOf: (san: San) => ControlledStore; reopen: () => San } {
  const stores = new Map<string, ControlledStore>();
  const openDurableStore = (location: string): ControlledStore => {
    let store = stores.get(location);
    if (!store) stores.set(location, (store = new ControlledStore(location)));
    return store;
  };
  const san = San.create(dir, { capacityBytes: 1024 * MiB, chunkSizeBytes: 64 * KiB, limits: LIMITS }, { openDurableStore });
  return { san, storeOf: (s) => openDurableStore(path.join(s.dataDir, "durable-store")), reopen: () => San.open(dir, { openDurableStore }) };
}

// Races and failures the random runs reach only by luck, pinned down with controls on the real store.
describe("durable tier races and store failures", () => {
  it("a restore started while the previous member is being deleted keeps reading its data", async () => {
    const dir = path.join(SHM_ROOT, `esan-durable-race-${process.pid}-${++dirCounter}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const { san, storeOf } = controlledSan(dir);
    try {
      san.createVolumeGroup("vg");
      san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 8 * MiB });
      san.write("vg/v", 0, Buffer.alloc(8 * MiB, 1));
      san.exportDiskSnapshot({ name: "a", sourceId: "vg/v" });
      await san.waitForDiskSnapshot("a");
      san.write("vg/v", 0, Buffer.alloc(4 * MiB, 2));
      const b = san.exportDiskSnapshot({ name: "b", sourceId: "vg/v" });
      await san.waitForDiskSnapshot("b");
      const expected = Buffer.alloc(8 * MiB, 1).fill(2, 0, 4 * MiB);
      // Hydration first reads b's own segments; hold those so the fold of a into b finishes first.
      const store = storeOf(san);
      store.hold((key) => key.includes(`/${b.memberId}/seg-g1-`));
      const deleting = attempt(() => san.deleteDiskSnapshot("a"));
      const restoring = attempt(() => san.createVolume({ volumeGroup: "vg", name: "r", sizeBytes: 8 * MiB, source: { kind: "diskSnapshot", id: "b" } }));
      // The fold runs while hydration waits; a delete that instead waits for the hydration gets it released.
      await Promise.race([deleting, sleep(2000)]);
      store.release();
      const [deleteRefused, restoreRefused] = [await deleting, await restoring];
      // Refusing either is fine; what may not happen is a restored volume that lost the data the fold moved.
      if (deleteRefused !== null) expect(codeOf(deleteRefused)).toBe("FailedPrecondition");
      if (restoreRefused === null) {
        sameBytes("restore during delete", "vg/r (readAsync)", await san.readAsync("vg/r", 0, 8 * MiB), expected);
        await san.waitForHydration("vg/r");
        expect(san.getVolume("vg/r").hydration).toMatchObject({ state: "complete", completionPercent: 100 });
        sameBytes("restore during delete", "vg/r (hydrated)", san.read("vg/r", 0, 8 * MiB), expected);
      } else {
        expect(codeOf(restoreRefused)).toBe("FailedPrecondition");
      }
      checkEngine(san, "restore during delete");
    } finally {
      san.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a wait on an export that a close interrupts settles with a typed error, and the export finishes after reopen", async () => {
    const dir = path.join(SHM_ROOT, `esan-durable-race-${process.pid}-${++dirCounter}`);
    fs.rmSync(dir, { recursive: true, force: true });
    let san = San.create(dir, { capacityBytes: 1024 * MiB, chunkSizeBytes: 64 * KiB, limits: LIMITS });
    try {
      san.createVolumeGroup("vg");
      san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 8 * MiB });
      san.write("vg/v", 0, Buffer.alloc(8 * MiB, 5));
      san.exportDiskSnapshot({ name: "a", sourceId: "vg/v" });
      const waiting = san.waitForDiskSnapshot("a").then(
        (info) => ({ ok: true as const, info }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      san.close();
      const settled = await waiting;
      // Either the wait outlives the close and reports completion, or it says in a typed error why it stopped.
      if (!settled.ok) expect(settled.err, `the interrupted wait rejected with ${describeError(settled.err)}`).toBeInstanceOf(EsanError);
      san = San.open(dir);
      expect((await san.waitForDiskSnapshot("a")).completionPercent).toBe(100);
    } finally {
      san.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an export a store failure stops breaks no later member, never reports ready below 100%, and finishes after reopen", async () => {
    const dir = path.join(SHM_ROOT, `esan-durable-race-${process.pid}-${++dirCounter}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const controlled = controlledSan(dir);
    let san = controlled.san;
    const contents = new Map<string, Buffer>();
    const exported = async (name: string): Promise<Outcome> => {
      contents.set(name, san.read("vg/v", 0, 8 * MiB));
      san.exportDiskSnapshot({ name, sourceId: "vg/v" });
      return san.waitForDiskSnapshot(name).then(
        (info) => ({ ok: true as const, info }),
        (err: unknown) => ({ ok: false as const, err }),
      );
    };
    // Every member the SAN lists as ready restores to exactly what its source held.
    const checkReadyMembers = async (label: string): Promise<void> => {
      for (const info of san.listDiskSnapshots().filter((d) => d.completionPercent === 100)) {
        const scratch = `k${++dirCounter}`;
        const refused = await attempt(() => san.createVolume({ volumeGroup: "vg", name: scratch, sizeBytes: 8 * MiB, source: { kind: "diskSnapshot", id: info.name } }));
        if (refused !== null) throw new Error(`${label}: ${info.name} is listed at 100% but cannot be restored: ${describeError(refused)}`);
        const read = await attempt(async () => sameBytes(label, `${info.name} restored`, await san.readAsync(`vg/${scratch}`, 0, 8 * MiB), contents.get(info.name)!));
        if (read !== null) throw new Error(`${label}: ${info.name} is listed at 100% but does not read back: ${describeError(read)}`);
        san.deleteVolume(`vg/${scratch}`);
      }
    };
    try {
      san.createVolumeGroup("vg");
      san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 8 * MiB });
      san.write("vg/v", 0, Buffer.alloc(8 * MiB, 1));
      expect((await exported("a")).ok).toBe(true);
      san.write("vg/v", 0, Buffer.alloc(MiB, 2));
      controlled.storeOf(san).failNextPut((key) => key.includes("/seg-"));
      const b = await exported("b");
      // The wait may report the failure; what it may never do is resolve short of 100%.
      if (b.ok) expect(b.info.completionPercent, "b's wait resolved").toBe(100);
      san.write("vg/v", MiB, Buffer.alloc(MiB, 3));
      const c = await exported("c");
      if (!c.ok) throw new Error(`c, exported after b failed, did not complete: ${describeError(c.err)}`);
      await checkReadyMembers("after b's export failed");
      san.close();
      san = controlled.reopen();
      const resumed = await san.waitForDiskSnapshot("b");
      expect(resumed.completionPercent, "b, resumed with the store back, completes").toBe(100);
      await checkReadyMembers("after reopen");
      checkEngine(san, "after reopen");
    } finally {
      san.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a hydration a store failure stops is reported by the wait, keeps serving right data, and a second wait finishes it", async () => {
    const dir = path.join(SHM_ROOT, `esan-durable-race-${process.pid}-${++dirCounter}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const controlled = controlledSan(dir);
    const san = controlled.san;
    try {
      san.createVolumeGroup("vg");
      san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 8 * MiB });
      const expected = Buffer.alloc(8 * MiB, 7).fill(8, 3 * MiB, 5 * MiB);
      san.write("vg/v", 0, expected);
      san.exportDiskSnapshot({ name: "a", sourceId: "vg/v" });
      await san.waitForDiskSnapshot("a");
      const store = controlled.storeOf(san);
      // Hold the first segment read, arm the failure behind it, then let hydration run into it.
      store.hold((key) => key.includes("/seg-"));
      san.createVolume({ volumeGroup: "vg", name: "r", sizeBytes: 8 * MiB, source: { kind: "diskSnapshot", id: "a" } });
      store.failNextGet((key) => key.includes("/seg-"));
      const waited = attempt(() => san.waitForHydration("vg/r"));
      store.release();
      const failure = await waited;
      expect(codeOf(failure), `the wait reported ${describeError(failure)}`).toBe("StoreUnavailable");
      expect((failure as Error).message).toMatch(/hydration of volume vg\/r .* stopped at \d+%/);
      expect(san.getVolume("vg/r").hydration?.state, "a stopped hydration is still hydrating, not complete").toBe("hydrating");
      sameBytes("after the failure", "vg/r read through", await san.readAsync("vg/r", 0, 8 * MiB), expected);
      await san.waitForHydration("vg/r");
      expect(san.getVolume("vg/r").hydration).toMatchObject({ state: "complete", completionPercent: 100 });
      sameBytes("after the second wait", "vg/r hydrated", san.read("vg/r", 0, 8 * MiB), expected);
      checkEngine(san, "after hydration resumed");
    } finally {
      san.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
