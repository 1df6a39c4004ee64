// Property test of the durable tier: random sequences of writes, exports, member deletions (folds), restores with
// I/O during hydration, diffs, reopens and source deletions must keep the engine equal to a flat reference model.
import fs from "node:fs";
import path from "node:path";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";
import type { DiskSnapshotInfo } from "../src/storage/types.ts";
import { DurableModel, differingChunks } from "./model/durable-model.ts";
import { checkShape, coveredChunks } from "./model/reference-model.ts";
import { attempt, checkEngine, codeOf, describeError, sameBytes } from "./support/durable-checks.ts";

const SECTOR = 512;
const GROUP = "vg";
/** Volumes the checks restore members into; the model never sees them. */
const CHECK_GROUP = "chk";
const MAX_SIZE_BYTES = 8 * 1024 * 1024;
const SHM_ROOT = fs.existsSync("/dev/shm") ? "/dev/shm" : "/tmp";
const LIMITS = { snapshotRateCount: 100_000, maxSnapshotsPerVolume: 100_000, maxDiskSnapshotsPerSource: 100_000 };

type Pattern = "random" | "const" | "zero";

/** A byte range of a target, resolved against the target's size when the op runs. */
interface Where {
  target: number;
  at: number;
  length: number;
}

/** One generated operation; targets are indices resolved against what exists when it runs. */
type Op =
  | { op: "create"; sizeSectors: number }
  | ({ op: "write"; pattern: Pattern; seed: number; fua: boolean; sync: boolean } & Where)
  /** Writes a whole volume, as a restore or a `dd` of a full disk would: every chunk becomes mapped. */
  | { op: "fill"; target: number; seed: number }
  | ({ op: "zero"; trim: boolean; noHole: boolean; sync: boolean; aligned: boolean } & Where)
  | { op: "snapshot"; target: number }
  | { op: "deleteSnapshot"; target: number }
  | { op: "export"; target: number; fromSnapshot: boolean; wait: "now" | "later" | "never" }
  | { op: "retryExport"; target: number }
  | { op: "awaitExport"; target: number }
  | { op: "deleteDisk"; target: number; restoreSuccessor: boolean }
  | ({ op: "restore"; growSectors: number; then: "nothing" | "read" | "write" | "hydrate"; seed: number } & Where)
  | ({ op: "read" } & Where)
  | { op: "hydrate"; target: number }
  | { op: "diff"; a: number; b: number }
  | { op: "deleteVolume"; target: number }
  /** Deletes a volume and creates another under its name: a new uniqueId, so a new family. */
  | { op: "recreate"; target: number; sizeSectors: number }
  /** Grows to `toSectors`, or by one sector when the volume is already that big. */
  | { op: "resize"; target: number; toSectors: number }
  | { op: "clone"; target: number }
  | { op: "tick"; turns: number }
  | { op: "reopen" };

interface Scenario {
  chunkSizeBytes: number;
  firstSizeSectors: number;
  ops: Op[];
}

/** Chunk size and how big images and I/O get. */
interface Scale {
  chunkSizeBytes: number;
  sizeSectors: fc.Arbitrary<number>;
  maxGrowSectors: number;
  resizeSectors: fc.Arbitrary<number>;
  writeLength: fc.Arbitrary<number>;
}

const target = fc.nat(1000);
const at = fc.nat(1 << 30);
const KiB = 1024;
const MiB = 1024 * KiB;

// 4 KiB chunks: 1024 chunks fill one map page, so volumes of 3-4 MiB that grow by up to 4 MiB cross the level boundary.
const SMALL_CHUNKS: Scale = {
  chunkSizeBytes: 4 * KiB,
  sizeSectors: fc.oneof(fc.integer({ min: 128, max: 2048 }), fc.integer({ min: 6 * 1024, max: 8 * 1024 })),
  maxGrowSectors: 8192,
  // Past 4 MiB the map gains a level: members and snapshots taken before and after then differ in depth.
  resizeSectors: fc.integer({ min: 8 * 1024 + 1, max: 16 * 1024 }),
  writeLength: fc.oneof(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 3 * 4 * KiB + 100 }), fc.integer({ min: 1, max: MiB })),
};
// 64 KiB chunks (the default): partial last chunks, sub-chunk writes that must hydrate the rest of their chunk first.
const BIG_CHUNKS: Scale = {
  chunkSizeBytes: 64 * KiB,
  sizeSectors: fc.oneof(fc.integer({ min: 128, max: 4096 }), fc.integer({ min: 4096, max: 16 * 1024 })),
  maxGrowSectors: 2048,
  resizeSectors: fc.integer({ min: 128, max: 16 * 1024 }),
  writeLength: fc.oneof(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 3 * 64 * KiB + 100 }), fc.integer({ min: 1, max: 2 * MiB })),
};

/** Relative weights of the op kinds in a run; kinds left out do not occur. */
type Mix = Partial<Record<Op["op"], number>>;

/** Everything the tier offers, I/O during hydration, folds and refusals included. */
const EVERYTHING: Mix = {
  create: 2, write: 10, fill: 1, zero: 3, snapshot: 3, deleteSnapshot: 1, export: 7, retryExport: 1, awaitExport: 3, deleteDisk: 3,
  restore: 5, read: 3, hydrate: 2, diff: 3, deleteVolume: 2, recreate: 1, resize: 2, clone: 1, tick: 2,
};
/** Long family histories of one source: writes, trims, growth, instant snapshots exported late, folds and diffs. */
const FAMILIES: Mix = { write: 8, fill: 2, zero: 4, snapshot: 5, resize: 3, export: 10, deleteDisk: 3, diff: 3, restore: 2, read: 1, recreate: 1 };

function opsArb(scale: Scale, mix: Mix, minLength: number, maxLength: number): fc.Arbitrary<Op[]> {
  const where = { target, at, length: scale.writeLength };
  const grow = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: scale.maxGrowSectors }));
  const arbitraries: { [K in Op["op"]]: fc.Arbitrary<Extract<Op, { op: K }>> } = {
    create: fc.record({ op: fc.constant("create" as const), sizeSectors: scale.sizeSectors }),
    write: fc.record({ op: fc.constant("write" as const), pattern: fc.constantFrom<Pattern>("random", "const", "zero"), seed: fc.nat(), fua: fc.boolean(), sync: fc.boolean(), ...where }),
    fill: fc.record({ op: fc.constant("fill" as const), target, seed: fc.nat() }),
    zero: fc.record({ op: fc.constant("zero" as const), trim: fc.boolean(), noHole: fc.boolean(), sync: fc.boolean(), aligned: fc.boolean(), ...where }),
    snapshot: fc.record({ op: fc.constant("snapshot" as const), target }),
    deleteSnapshot: fc.record({ op: fc.constant("deleteSnapshot" as const), target }),
    export: fc.record({ op: fc.constant("export" as const), target, fromSnapshot: fc.boolean(), wait: fc.constantFrom("now" as const, "later" as const, "never" as const) }),
    retryExport: fc.record({ op: fc.constant("retryExport" as const), target }),
    awaitExport: fc.record({ op: fc.constant("awaitExport" as const), target }),
    deleteDisk: fc.record({ op: fc.constant("deleteDisk" as const), target, restoreSuccessor: fc.boolean() }),
    restore: fc.record({
      op: fc.constant("restore" as const),
      growSectors: grow,
      then: fc.constantFrom("nothing" as const, "read" as const, "write" as const, "hydrate" as const),
      seed: fc.nat(),
      ...where,
    }),
    read: fc.record({ op: fc.constant("read" as const), ...where }),
    hydrate: fc.record({ op: fc.constant("hydrate" as const), target }),
    diff: fc.record({ op: fc.constant("diff" as const), a: target, b: target }),
    deleteVolume: fc.record({ op: fc.constant("deleteVolume" as const), target }),
    recreate: fc.record({ op: fc.constant("recreate" as const), target, sizeSectors: scale.sizeSectors }),
    resize: fc.record({ op: fc.constant("resize" as const), target, toSectors: scale.resizeSectors }),
    clone: fc.record({ op: fc.constant("clone" as const), target }),
    tick: fc.record({ op: fc.constant("tick" as const), turns: fc.integer({ min: 1, max: 20 }) }),
    reopen: fc.constant({ op: "reopen" as const }),
  };
  const ops = (Object.keys(arbitraries) as Op["op"][])
    .filter((kind) => (mix[kind] ?? 0) > 0)
    .map((kind): fc.WeightedArbitrary<Op> => ({ weight: mix[kind] ?? 0, arbitrary: arbitraries[kind] }));
  return fc.array(fc.oneof(...ops), { minLength, maxLength, size: "max" });
}

function scenarioArb(scale: Scale, mix: Mix, minOps: number, maxOps: number): fc.Arbitrary<Scenario> {
  return fc.record({ chunkSizeBytes: fc.constant(scale.chunkSizeBytes), firstSizeSectors: scale.sizeSectors, ops: opsArb(scale, mix, minOps, maxOps) });
}

/** How a waitForDiskSnapshot settled; kept so a wait can stay pending across later ops. */
type Outcome = { ok: true; info: DiskSnapshotInfo } | { ok: false; err: unknown };

interface Run {
  san: San;
  model: DurableModel;
  dir: string;
  env: { now: () => number; newUniqueId: () => string };
  chunkSizeBytes: number;
  /** Waits started on the open SAN, by disk snapshot name. */
  waits: Map<string, Promise<Outcome>>;
  /** Waits nobody awaits (exports left to run, or waits on an instance since closed): they must still settle. */
  stale: Promise<Outcome>[];
  /** Why exports stopped, as their waits reported. */
  stopped: Map<string, unknown>;
  counter: number;
}

let dirCounter = 0;

/** Runs one scenario on a fresh SAN under /dev/shm, checking the engine against the model as it goes. */
async function runScenario(scenario: Scenario, checkEvery = 4): Promise<void> {
  const chunkSizeBytes = scenario.chunkSizeBytes;
  const dir = path.join(SHM_ROOT, `esan-durable-prop-${process.pid}-${++dirCounter}`);
  fs.rmSync(dir, { recursive: true, force: true });
  let clock = Date.parse("2026-01-01T00:00:00Z");
  let uniqueIds = 0;
  const env = { now: () => (clock += 1000), newUniqueId: () => `uid-${++uniqueIds}` };
  const san = San.create(dir, { capacityBytes: 1024 * MiB, chunkSizeBytes, limits: LIMITS }, env);
  const run: Run = { san, model: new DurableModel(chunkSizeBytes), dir, env, chunkSizeBytes, waits: new Map(), stale: [], stopped: new Map(), counter: 0 };
  try {
    run.san.createVolumeGroup(GROUP);
    run.san.createVolumeGroup(CHECK_GROUP);
    await applyOp(run, { op: "create", sizeSectors: scenario.firstSizeSectors }, "first volume");
    for (const [index, op] of scenario.ops.entries()) {
      const label = `op #${index} ${JSON.stringify(op)}`;
      await applyOp(run, op, label);
      await checkCatalog(run, label);
      if (op.op === "reopen" || (index + 1) % checkEvery === 0) await checkContents(run, label);
    }
    await finish(run);
  } finally {
    try {
      run.san.close();
    } finally {
      // Background jobs of a closed SAN may still be inside a store call; let them settle before the directory goes.
      await Promise.all(run.stale);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

function pick<T>(items: readonly T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

/**
 * Two targets in three go to the oldest volume that was not restored: long families (and so incremental members,
 * folds and diffs across them) need exports to keep hitting one source. The rest spread over every volume.
 */
function pickVolume(model: DurableModel, index: number): string | undefined {
  const volumes = [...model.volumes.keys()];
  const primary = volumes.find((id) => model.volume(id).restoredFrom === null);
  return index % 3 !== 0 && primary !== undefined ? primary : pick(volumes, index);
}

/** A range inside an image of `sizeBytes`: from `at` (mod size), 1 to `length` bytes, clipped to the end. */
function rangeIn(sizeBytes: number, where: { at: number; length: number }): { offset: number; length: number } {
  const offset = where.at % sizeBytes;
  return { offset, length: Math.max(1, Math.min(where.length, sizeBytes - offset)) };
}

/** Like rangeIn, widened to whole chunks (clipped to the end). */
function chunkRangeIn(sizeBytes: number, where: { at: number; length: number }, chunkSizeBytes: number): { offset: number; length: number } {
  const { offset, length } = rangeIn(sizeBytes, where);
  const start = offset - (offset % chunkSizeBytes);
  const end = Math.min(sizeBytes, Math.ceil((offset + length) / chunkSizeBytes) * chunkSizeBytes);
  return { offset: start, length: end - start };
}

function makePattern(pattern: Pattern, seed: number, length: number): Buffer {
  if (pattern === "zero") return Buffer.alloc(length);
  if (pattern === "const") return Buffer.alloc(length, (seed % 255) + 1);
  const out = Buffer.allocUnsafe(length);
  const next = mulberry32(seed);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** True while the engine says the volume reads through to a disk snapshot. */
function hydrating(san: San, volumeId: string): boolean {
  return san.getVolume(volumeId).hydration?.state === "hydrating";
}

/** Follows a wait; a rejection is kept as the reason that export stopped, for later messages. */
function watch(run: Run, name: string): Promise<Outcome> {
  const san = run.san;
  return san.waitForDiskSnapshot(name).then(
    (info) => ({ ok: true as const, info }),
    (err: unknown) => {
      // A wait on a SAN closed since has nothing to say about the export, which resumes on the next open.
      if (run.san === san) run.stopped.set(name, err);
      return { ok: false as const, err };
    },
  );
}

/** Awaits a wait's outcome: the export must complete at 100%. */
async function expectReady(run: Run, name: string, outcome: Promise<Outcome>, label: string): Promise<void> {
  const settled = await outcome;
  if (!settled.ok) throw new Error(`${label}: waitForDiskSnapshot(${name}) rejected: ${describeError(settled.err)}`);
  expect(settled.info.completionPercent, `${label}: ${name} resolved its wait`).toBe(100);
  if (run.model.diskSnapshots.has(name)) expect(run.san.getDiskSnapshot(name).completionPercent, `${label}: ${name} after its wait`).toBe(100);
}

/** Member names of `name`'s chain (itself and every previous member it reads through), from the engine's listing. */
function chainOf(infos: DiskSnapshotInfo[], name: string): string[] {
  const byMember = new Map(infos.map((info) => [info.memberId, info]));
  const chain: string[] = [];
  let current = infos.find((info) => info.name === name);
  while (current !== undefined && !chain.includes(current.name)) {
    chain.push(current.name);
    current = current.previousMemberId === null ? undefined : byMember.get(current.previousMemberId);
  }
  return chain;
}

async function applyOp(run: Run, op: Op, label: string): Promise<void> {
  const { model } = run;
  const san = run.san;
  const volumes = [...model.volumes.keys()];
  const snapshots = [...model.snapshots.keys()];
  const members = [...model.diskSnapshots.keys()];
  switch (op.op) {
    case "create": {
      const id = `${GROUP}/v${run.counter++}`;
      const sizeBytes = Math.min(MAX_SIZE_BYTES, op.sizeSectors * SECTOR);
      san.createVolume({ volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sizeBytes });
      model.createVolume(id, sizeBytes);
      return;
    }
    case "write":
    case "zero": {
      const id = pickVolume(model, op.target);
      if (id === undefined) return;
      const sizeBytes = model.volume(id).bytes.length;
      // Aligned zeroes cover whole chunks, which a trim unmaps: the case where a later member holds nothing.
      const { offset, length } = op.op === "zero" && op.aligned ? chunkRangeIn(sizeBytes, op, run.chunkSizeBytes) : rangeIn(sizeBytes, op);
      if (op.sync && hydrating(san, id)) {
        // Sync I/O cannot read through to the store: a hydrating volume refuses it and stays unchanged.
        const refused = await attempt(() => (op.op === "write" ? san.write(id, offset, Buffer.alloc(length)) : san.trim(id, offset, length)));
        expect(codeOf(refused), `${label}: sync I/O on hydrating ${id}`).toBe("FailedPrecondition");
        return;
      }
      if (op.op === "write") {
        const data = makePattern(op.pattern, op.seed, length);
        if (op.sync) san.write(id, offset, data, { fua: op.fua });
        else await san.writeAsync(id, offset, data, { fua: op.fua });
        model.write(id, offset, data);
      } else {
        if (op.sync) {
          if (op.trim) san.trim(id, offset, length);
          else san.writeZeroes(id, offset, length, { noHole: op.noHole });
        } else if (op.trim) {
          await san.trimAsync(id, offset, length);
        } else {
          await san.writeZeroesAsync(id, offset, length, { noHole: op.noHole });
        }
        model.zero(id, offset, length);
      }
      return;
    }
    case "fill": {
      const id = pickVolume(model, op.target);
      if (id === undefined) return;
      const data = makePattern("random", op.seed, model.volume(id).bytes.length);
      await san.writeAsync(id, 0, data);
      model.write(id, 0, data);
      return;
    }
    case "snapshot": {
      const volumeId = pickVolume(model, op.target);
      if (volumeId === undefined) return;
      const wasHydrating = hydrating(san, volumeId);
      const id = `${GROUP}/s${run.counter++}`;
      let info: ReturnType<San["createSnapshot"]> | undefined;
      const refused = await attempt(() => (info = san.createSnapshot({ volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sourceVolumeId: volumeId })));
      if (refused !== null) {
        // Sharing a hydrating volume's map would share holes where its data still lives in the store.
        expect(`${codeOf(refused)} hydrating=${wasHydrating}`, `${label}: snapshot refused: ${describeError(refused)}`).toBe("FailedPrecondition hydrating=true");
        return;
      }
      model.snapshot(id, volumeId, info!.sourceUniqueId);
      return;
    }
    case "deleteSnapshot": {
      const id = pick(snapshots, op.target);
      if (id === undefined) return;
      san.deleteSnapshot(id);
      model.snapshots.delete(id);
      return;
    }
    case "export":
      return exportOp(run, op, label);
    case "retryExport": {
      const name = pick(members, op.target);
      if (name === undefined) return;
      const member = model.diskSnapshot(name);
      const snapshot = model.snapshots.get(member.exportedFrom);
      const family = snapshot?.family ?? (model.volumes.has(member.exportedFrom) ? san.getVolume(member.exportedFrom).uniqueId : null);
      let info: DiskSnapshotInfo | undefined;
      const refused = await attempt(() => (info = san.exportDiskSnapshot({ name, sourceId: member.exportedFrom })));
      if (family === null) {
        expect(codeOf(refused), `${label}: retrying export ${name} after its source ${member.exportedFrom} was deleted`).toBe("NotFound");
        return;
      }
      if (family !== member.family) {
        // Same name, other volume: this is not a retry of the first request.
        expect(codeOf(refused), `${label}: exporting ${name} again from ${member.exportedFrom}, created anew since`).toBe("AlreadyExists");
        return;
      }
      if (refused !== null) throw new Error(`${label}: retrying export ${name} with the same source was refused: ${describeError(refused)}`);
      expect(info!.name, `${label}: an identical export request returns the existing member`).toBe(name);
      expect(info!.memberId).toBe(san.getDiskSnapshot(name).memberId);
      expect(san.listDiskSnapshots().filter((d) => d.name === name), `${label}: a retry must not add a member`).toHaveLength(1);
      return;
    }
    case "awaitExport": {
      const name = pick([...run.waits.keys()], op.target) ?? pick(members, op.target);
      if (name === undefined) return;
      const outcome = run.waits.get(name) ?? watch(run, name);
      run.waits.delete(name);
      return expectReady(run, name, outcome, label);
    }
    case "deleteDisk":
      return deleteDiskOp(run, op, label);
    case "restore":
      return restoreOp(run, op, label);
    case "read": {
      const id = pick([...volumes, ...snapshots], op.target);
      if (id === undefined) return;
      const bytes = model.image(id);
      const { offset, length } = rangeIn(bytes.length, op);
      const got = model.volumes.has(id) ? await san.readAsync(id, offset, length) : san.read(id, offset, length);
      sameBytes(label, `${id} [${offset}, +${length})`, got, bytes.subarray(offset, offset + length));
      return;
    }
    case "hydrate": {
      const id = pick(volumes, op.target);
      if (id === undefined) return;
      return hydrateAndCheck(run, id, label);
    }
    case "diff": {
      const a = pick(members, op.a);
      // Mostly two members of one family: the diffs that must be computed rather than refused.
      const b = op.b % 4 === 0 || a === undefined ? pick(members, op.b) : pick(model.family(model.diskSnapshot(a).family).map((m) => m.name), op.b);
      if (a === undefined || b === undefined) return;
      return checkDiskDiff(run, a, b, label);
    }
    case "deleteVolume": {
      const id = pick(volumes, op.target);
      if (id === undefined) return;
      san.deleteVolume(id);
      model.volumes.delete(id);
      return;
    }
    case "recreate": {
      // Half the time the newest restored volume, maybe still starting its hydration: the name outlives the volume.
      const restored = volumes.filter((v) => model.volume(v).restoredFrom !== null);
      const id = op.target % 2 === 0 && restored.length > 0 ? restored.at(-1) : pickVolume(model, op.target);
      if (id === undefined) return;
      const sizeBytes = Math.min(MAX_SIZE_BYTES, op.sizeSectors * SECTOR);
      const before = san.getVolume(id).uniqueId;
      san.deleteVolume(id);
      model.volumes.delete(id);
      const info = san.createVolume({ volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sizeBytes });
      expect(info.uniqueId, `${label}: a volume created anew under ${id}'s name`).not.toBe(before);
      model.createVolume(id, sizeBytes);
      return;
    }
    case "resize": {
      const id = pickVolume(model, op.target);
      if (id === undefined) return;
      const current = model.volume(id).bytes.length;
      const sizeBytes = Math.max(current + SECTOR, op.toSectors * SECTOR);
      if (sizeBytes > MAX_SIZE_BYTES) return;
      const wasHydrating = hydrating(san, id);
      const refused = await attempt(() => san.resizeVolume(id, sizeBytes));
      if (refused !== null) {
        expect(`${codeOf(refused)} hydrating=${wasHydrating}`, `${label}: resize refused: ${describeError(refused)}`).toBe("FailedPrecondition hydrating=true");
        return;
      }
      model.resize(id, sizeBytes);
      return;
    }
    case "clone": {
      const sourceId = pick(volumes, op.target);
      if (sourceId === undefined) return;
      const id = `${GROUP}/c${run.counter++}`;
      const sizeBytes = model.volume(sourceId).bytes.length;
      const wasHydrating = hydrating(san, sourceId);
      const refused = await attempt(() => san.createVolume({ volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sizeBytes, source: { kind: "volume", id: sourceId } }));
      if (refused !== null) {
        expect(`${codeOf(refused)} hydrating=${wasHydrating}`, `${label}: clone refused: ${describeError(refused)}`).toBe("FailedPrecondition hydrating=true");
        return;
      }
      model.clone(id, sourceId, sizeBytes);
      return;
    }
    case "tick":
      for (let i = 0; i < op.turns; i++) await nextTurn();
      return;
    case "reopen": {
      run.stale.push(...run.waits.values());
      run.waits.clear();
      san.close();
      run.san = San.open(run.dir, run.env);
      checkEngine(run.san, label);
      return;
    }
  }
}

/** Exports a volume's current state or an instant snapshot; the member must end up holding exactly those bytes. */
async function exportOp(run: Run, op: Extract<Op, { op: "export" }>, label: string): Promise<void> {
  const { model, san } = run;
  const fromSnapshot = op.fromSnapshot && model.snapshots.size > 0;
  // Half the snapshot exports take the oldest snapshot: a state from before later writes, trims and growth.
  const sourceId = fromSnapshot ? pick([...model.snapshots.keys()], op.target % 2 === 0 ? 0 : op.target) : pickVolume(model, op.target);
  if (sourceId === undefined) return;
  const snapshot = model.snapshots.get(sourceId);
  const family = snapshot?.family ?? san.getVolume(sourceId).uniqueId;
  const sourceResourceId = snapshot?.sourceResourceId ?? sourceId;
  const allocatedChunks = snapshot
    ? coveredChunks(run.chunkSizeBytes, san.allocatedRanges(sourceId)).size
    : san.getVolume(sourceId).allocatedBytes / run.chunkSizeBytes;
  const firstOfFamily = model.family(family).length === 0;
  const wasHydrating = snapshot === undefined && hydrating(san, sourceId);
  const name = `d${run.counter++}`;
  let info: DiskSnapshotInfo | undefined;
  const refused = await attempt(() => (info = san.exportDiskSnapshot({ name, sourceId })));
  if (refused !== null) {
    expect(`${codeOf(refused)} hydrating=${wasHydrating}`, `${label}: export of ${sourceId} refused: ${describeError(refused)}`).toBe("FailedPrecondition hydrating=true");
    return;
  }
  const what = `${label}: export ${name} of ${sourceId}`;
  expect(info, what).toMatchObject({ name, exportedFrom: sourceId, sourceResourceId, sourceUniqueId: family, sizeBytes: model.image(sourceId).length, sectorSize: SECTOR });
  if (firstOfFamily) expect(info!.incremental, `${what}: the first member of a family is full`).toBe(false);
  expect(info!.completionPercent).toBeGreaterThanOrEqual(0);
  expect(info!.completionPercent).toBeLessThanOrEqual(100);
  model.exportDiskSnapshot({ name, exportedFrom: sourceId, sourceResourceId, family, allocatedChunks });
  const outcome = watch(run, name);
  if (op.wait === "now") await expectReady(run, name, outcome, label);
  else if (op.wait === "later") run.waits.set(name, outcome);
  else run.stale.push(outcome);
}

/**
 * Deletes a member (folding its delta into the next one). Refusal is allowed only for the reasons the API gives:
 * it or its successor is still exporting, or a volume is hydrating from a chain that contains it. With
 * `restoreSuccessor`, a restore from the next member starts while the fold runs.
 */
async function deleteDiskOp(run: Run, op: Extract<Op, { op: "deleteDisk" }>, label: string): Promise<void> {
  const { model, san } = run;
  const names = [...model.diskSnapshots.keys()];
  // Half the time the newest member: deleting it takes away the base the family's next export diffs against.
  const name = op.target % 2 === 0 ? names.at(-1) : pick(names, op.target);
  if (name === undefined) return;
  const infos = san.listDiskSnapshots();
  const info = san.getDiskSnapshot(name);
  const successor = infos.find((d) => d.previousMemberId === info.memberId);
  const exporting = info.completionPercent < 100 || (successor !== undefined && successor.completionPercent < 100);
  const hydratingFrom = [...model.volumes].filter(([id, volume]) => {
    const status = volume.restoredFrom === null ? null : san.getVolume(id).hydration;
    return status?.state === "hydrating" && chainOf(infos, status.diskSnapshot).includes(name);
  });
  const deleting = attempt(() => san.deleteDiskSnapshot(name));
  let restoredId: string | null = null;
  if (op.restoreSuccessor && successor !== undefined && successor.completionPercent === 100 && model.diskSnapshots.has(successor.name)) {
    const id = `${GROUP}/r${run.counter++}`;
    const sizeBytes = model.diskSnapshot(successor.name).content.length;
    const restoreRefused = await attempt(() =>
      san.createVolume({ volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sizeBytes, source: { kind: "diskSnapshot", id: successor.name } }),
    );
    if (restoreRefused === null) {
      model.restore(id, successor.name, sizeBytes);
      restoredId = id;
    } else {
      expect(codeOf(restoreRefused), `${label}: restore of ${successor.name} during the delete of ${name}: ${describeError(restoreRefused)}`).toBe("FailedPrecondition");
    }
  }
  const refused = await deleting;
  const mayRefuse = exporting || hydratingFrom.length > 0;
  if (refused !== null) {
    if (!mayRefuse || codeOf(refused) !== "FailedPrecondition") {
      throw new Error(`${label}: deleting ${name} was refused without cause (nothing exports or hydrates from it): ${describeError(refused)}`);
    }
  } else {
    if (info.completionPercent < 100) throw new Error(`${label}: ${name} was deleted at ${info.completionPercent}% exported`);
    if (hydratingFrom.length > 0) throw new Error(`${label}: ${name} was deleted while ${hydratingFrom.map(([id]) => id).join(", ")} hydrated from a chain containing it`);
    model.diskSnapshots.delete(name);
    run.waits.delete(name);
  }
  if (restoredId !== null) {
    const bytes = model.volume(restoredId).bytes;
    sameBytes(label, `${restoredId} (restored from ${successor?.name} while ${name} was deleted)`, await san.readAsync(restoredId, 0, bytes.length), bytes);
  }
}

/** Restores a member into a new volume, usable at once; then maybe reads, writes or waits for hydration. */
async function restoreOp(run: Run, op: Extract<Op, { op: "restore" }>, label: string): Promise<void> {
  const { model, san } = run;
  const names = [...model.diskSnapshots.keys()];
  const ready = names.filter((n) => san.getDiskSnapshot(n).completionPercent === 100);
  // Mostly ready members; the rest exercise the "not ready" refusal.
  const name = op.target % 4 !== 0 && ready.length > 0 ? pick(ready, op.target) : pick(names, op.target);
  if (name === undefined) return;
  const member = model.diskSnapshot(name);
  const sizeBytes = Math.max(member.content.length, Math.min(MAX_SIZE_BYTES, member.content.length + op.growSectors * SECTOR));
  const id = `${GROUP}/r${run.counter++}`;
  const percent = san.getDiskSnapshot(name).completionPercent;
  const request = { volumeGroup: GROUP, name: id.slice(GROUP.length + 1), sizeBytes, source: { kind: "diskSnapshot" as const, id: name } };
  if (percent < 100) {
    const refused = await attempt(() => san.createVolume(request));
    expect(codeOf(refused), `${label}: restore of ${name} at ${percent}%`).toBe("FailedPrecondition");
    expect((refused as Error).message).toMatch(/not ready, \d+% copied/);
    return;
  }
  const info = san.createVolume(request);
  expect(info.hydration, `${label}: ${id} hydration`).toMatchObject({ diskSnapshot: name });
  expect(info.creationData, `${label}: ${id} creationData`).toMatchObject({ kind: "diskSnapshot", sourceId: name });
  model.restore(id, name, sizeBytes);
  const bytes = model.volume(id).bytes;
  const { offset, length } = rangeIn(sizeBytes, op);
  if (op.then === "read") {
    sameBytes(label, `${id} [${offset}, +${length}) right after the restore`, await san.readAsync(id, offset, length), bytes.subarray(offset, offset + length));
  } else if (op.then === "write") {
    const data = makePattern("random", op.seed, length);
    await san.writeAsync(id, offset, data);
    model.write(id, offset, data);
    // The chunks around the write came from the store first: the whole neighbourhood must read right.
    const from = Math.max(0, offset - run.chunkSizeBytes);
    const to = Math.min(sizeBytes, offset + length + run.chunkSizeBytes);
    sameBytes(label, `${id} [${from}, ${to}) after a write during hydration`, await san.readAsync(id, from, to - from), bytes.subarray(from, to));
  } else if (op.then === "hydrate") {
    await hydrateAndCheck(run, id, label);
  }
}

/** Waits for a volume's hydration; afterwards it is complete at 100% and sync reads return the model's bytes. */
async function hydrateAndCheck(run: Run, id: string, label: string): Promise<void> {
  const { model, san } = run;
  await san.waitForHydration(id);
  const status = san.getVolume(id).hydration;
  if (model.volume(id).restoredFrom === null) expect(status, `${label}: ${id} was not restored`).toBeNull();
  else expect(status, `${label}: ${id} after waitForHydration`).toMatchObject({ state: "complete", completionPercent: 100 });
  const bytes = model.volume(id).bytes;
  sameBytes(label, `${id} (sync read after hydration)`, san.read(id, 0, bytes.length), bytes);
}

/** A diff of two members covers every chunk whose content differs, chunk-aligned; pending or foreign members are refused. */
async function checkDiskDiff(run: Run, a: string, b: string, label: string): Promise<void> {
  const { model, san } = run;
  const pending = san.getDiskSnapshot(a).completionPercent < 100 || san.getDiskSnapshot(b).completionPercent < 100;
  const [ma, mb] = [model.diskSnapshot(a), model.diskSnapshot(b)];
  const what = `${label}: diffDiskSnapshots(${a}, ${b})`;
  const diffing = san.diffDiskSnapshots(a, b);
  const refused = await attempt(() => diffing);
  if (pending) {
    expect(codeOf(refused), `${what} of a member still exporting`).toBe("FailedPrecondition");
    return;
  }
  if (ma.family !== mb.family) {
    expect(codeOf(refused), `${what} across families`).toBe("InvalidArgument");
    return;
  }
  if (refused !== null) throw new Error(`${what} was refused: ${describeError(refused)}`);
  const result = await diffing;
  const end = Math.max(ma.content.length, mb.content.length);
  checkShape(result.ranges, run.chunkSizeBytes, end, what);
  expect(result.chunkSizeBytes, `${what}: chunkSizeBytes`).toBe(run.chunkSizeBytes);
  expect(result.changedBytes, `${what}: changedBytes`).toBe(result.ranges.reduce((sum, range) => sum + range.length, 0));
  const covered = coveredChunks(run.chunkSizeBytes, result.ranges);
  const missed = differingChunks(run.chunkSizeBytes, ma.content, mb.content).filter((chunk) => !covered.has(chunk));
  if (missed.length > 0) {
    throw new Error(`${what} misses chunks whose content differs: ${missed.slice(0, 20).join(",")}${missed.length > 20 ? "…" : ""} (${missed.length}); ranges ${JSON.stringify(result.ranges)}`);
  }
}

/** Why an export stopped, for a failure message: what a wait said, or says within a second. */
async function stoppedBecause(run: Run, name: string): Promise<string> {
  const outcome = await Promise.race([watch(run, name), sleep(1000).then(() => null)]);
  const reason = run.stopped.get(name) ?? (outcome === null ? "its wait is still pending" : outcome.ok ? "its wait resolved" : outcome.err);
  return ` (${typeof reason === "string" ? reason : `its export stopped: ${describeError(reason)}`})`;
}

/** Listings and per-member facts match the model; reads everything before it yields (only to explain a failure). */
async function checkCatalog(run: Run, label: string): Promise<void> {
  const { model, san } = run;
  const infos = san.listDiskSnapshots();
  expect(infos.map((d) => d.name), `${label}: listDiskSnapshots, oldest first`).toEqual([...model.diskSnapshots.keys()]);
  const byMember = new Map(infos.map((d) => [d.memberId, d]));
  for (const info of infos) {
    const member = model.diskSnapshot(info.name);
    const what = `${label}: disk snapshot ${info.name}`;
    expect(info, what).toMatchObject({
      exportedFrom: member.exportedFrom,
      sourceResourceId: member.sourceResourceId,
      sourceUniqueId: member.family,
      sizeBytes: member.content.length,
      sectorSize: SECTOR,
      incremental: info.previousMemberId !== null,
    });
    expect(info.completionPercent, what).toBeGreaterThanOrEqual(0);
    expect(info.completionPercent, what).toBeLessThanOrEqual(100);
    if (info.previousMemberId !== null) {
      const previous = byMember.get(info.previousMemberId);
      if (previous === undefined) throw new Error(`${what} reads through member ${info.previousMemberId}, which is not listed`);
      expect(previous.sourceUniqueId, `${what}: its previous member belongs to its family`).toBe(info.sourceUniqueId);
      // A ready member is restorable, so everything it reads through must be ready too.
      if (info.completionPercent === 100 && previous.completionPercent < 100) {
        throw new Error(`${what} is ready but reads through ${previous.name}, which is at ${previous.completionPercent}%${await stoppedBecause(run, previous.name)}`);
      }
    }
    if (info.completionPercent === 100 && !info.incremental) {
      expect(info.usedBytes, `${what}: a full member stores the source's allocated chunks`).toBe(member.allocatedChunks * run.chunkSizeBytes);
    }
  }
  for (const [id, volume] of model.volumes) {
    const info = san.getVolume(id);
    expect(info.sizeBytes, `${label}: ${id} size`).toBe(volume.bytes.length);
    if (volume.restoredFrom === null) {
      expect(info.hydration, `${label}: ${id} hydration`).toBeNull();
    } else {
      expect(info.hydration, `${label}: ${id} hydration`).toMatchObject({ diskSnapshot: volume.restoredFrom });
      if (info.hydration?.state === "complete") expect(info.hydration.completionPercent, `${label}: ${id} hydration`).toBe(100);
    }
  }
  // The family listing of a few volumes (each call reads every member row).
  for (const id of [...model.volumes.keys()].slice(0, 2)) {
    const family = model.family(san.getVolume(id).uniqueId).map((member) => member.name);
    expect(san.listDiskSnapshots({ sourceId: id }).map((d) => d.name), `${label}: listDiskSnapshots({sourceId: ${id}})`).toEqual(family);
  }
}

/** Every volume (through readAsync, hydrating or not) and every snapshot reads as the model says. */
async function checkContents(run: Run, label: string): Promise<void> {
  for (const [id, volume] of run.model.volumes) {
    sameBytes(label, `${id} (readAsync)`, await run.san.readAsync(id, 0, volume.bytes.length), volume.bytes);
  }
  for (const [id, snapshot] of run.model.snapshots) sameBytes(label, id, run.san.read(id, 0, snapshot.bytes.length), snapshot.bytes);
}

/** Restores a member into a scratch volume and compares it, at once (read-through) and, if asked, after hydration. */
async function verifyMember(run: Run, name: string, hydrate: boolean, label: string): Promise<void> {
  const member = run.model.diskSnapshot(name);
  const scratch = `k${run.counter++}`;
  const id = `${CHECK_GROUP}/${scratch}`;
  run.san.createVolume({ volumeGroup: CHECK_GROUP, name: scratch, sizeBytes: member.content.length, source: { kind: "diskSnapshot", id: name } });
  sameBytes(label, `disk snapshot ${name} (restored into ${id}, read through)`, await run.san.readAsync(id, 0, member.content.length), member.content);
  if (hydrate) {
    await run.san.waitForHydration(id);
    expect(run.san.getVolume(id).hydration, `${label}: ${id}`).toMatchObject({ state: "complete", completionPercent: 100 });
    sameBytes(label, `disk snapshot ${name} (restored into ${id}, hydrated)`, run.san.read(id, 0, member.content.length), member.content);
  }
  run.san.deleteVolume(id);
}

/** The end of a run: every export completes, every member restores right, diffs are sound, hydrations finish. */
async function finish(run: Run): Promise<void> {
  const label = "end of run";
  for (const [name, outcome] of run.waits) await expectReady(run, name, outcome, label);
  run.waits.clear();
  for (const name of run.model.diskSnapshots.keys()) await expectReady(run, name, watch(run, name), label);
  await checkCatalog(run, label);
  for (const [index, name] of [...run.model.diskSnapshots.keys()].entries()) await verifyMember(run, name, index % 3 === 0, label);
  const members = [...run.model.diskSnapshots.values()];
  let pairs = 0;
  for (const a of members) {
    for (const b of members) {
      if (a.family === b.family && a.name < b.name && pairs++ < 12) await checkDiskDiff(run, a.name, b.name, label);
    }
  }
  await checkContents(run, label);
  for (const id of run.model.volumes.keys()) await hydrateAndCheck(run, id, label);
  checkEngine(run.san, label);
  run.san.close();
  run.san = San.open(run.dir, run.env);
  checkEngine(run.san, `${label}, reopened`);
  await checkCatalog(run, `${label}, reopened`);
  await checkContents(run, `${label}, reopened`);
}

/**
 * Runs are bounded in number and in time: a busy machine gets fewer runs rather than a timeout, and a failure's
 * shrinking stops at the limit and reports the smallest counterexample found so far.
 */
function budget(numRuns: number, timeLimitMs: number): fc.Parameters<[Scenario]> {
  // The plugin never looks at the values, so it serves a property of any type.
  return { numRuns, plugins: [fc.interruptAfterTimeLimit(timeLimitMs) as fc.Plugin<[Scenario]>] };
}

describe("durable tier vs flat reference model", () => {
  it("4 KiB chunks: exports, folds, restores with I/O during hydration and diffs match the model", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(SMALL_CHUNKS, EVERYTHING, 5, 50), (scenario) => runScenario(scenario)),
      budget(200, 12_000),
    );
  });

  it("64 KiB chunks: exports, folds, restores with I/O during hydration and diffs match the model", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(BIG_CHUNKS, EVERYTHING, 5, 50), (scenario) => runScenario(scenario)),
      budget(200, 12_000),
    );
  });

  it("long family histories across map growth: every member restores and diffs right", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(SMALL_CHUNKS, FAMILIES, 10, 40), (scenario) => runScenario(scenario, 5)),
      budget(200, 12_000),
    );
  });

  it("exports and hydrations resume across close and reopen", async () => {
    const withReopens: Mix = { ...EVERYTHING, reopen: 3 };
    await fc.assert(
      fc.asyncProperty(fc.oneof(scenarioArb(SMALL_CHUNKS, withReopens, 20, 50), scenarioArb(BIG_CHUNKS, withReopens, 20, 50)), (scenario) => runScenario(scenario, 5)),
      budget(60, 12_000),
    );
  });
});
