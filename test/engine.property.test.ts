// Property test: random sequences of engine operations must keep the SAN equal to a flat reference model.
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";
import { EsanError } from "../src/storage/errors.ts";
import type { ByteRange } from "../src/storage/types.ts";
import { checkShape, chunksOf, coveredChunks, ModelRefusal, ReferenceModel } from "./model/reference-model.ts";

const CHUNK = 4096;
const SECTOR = 512;
const GROUP = "vg";
const SHM_ROOT = fs.existsSync("/dev/shm") ? "/dev/shm" : "/tmp";

/** A location inside (or, with `beyond`, partly or wholly past the end of) a target image. */
interface Where {
  target: number;
  at: number;
  length: number;
  beyond: boolean;
}

/** One generated operation; image choices are indices resolved against the live images when it runs. */
type Op =
  | { op: "create"; sizeSectors: number; reuseName: boolean }
  | ({ op: "write"; pattern: "random" | "const" | "zero"; seed: number; toSnapshot: boolean } & Where)
  | ({ op: "zero"; noHole: boolean; toSnapshot: boolean } & Where)
  | ({ op: "trim"; toSnapshot: boolean } & Where)
  | ({ op: "readBeyond" } & Where)
  | { op: "snapshot"; target: number; reuseName: boolean }
  | { op: "clone"; target: number; growSectors: number; smaller: boolean; reuseName: boolean }
  | { op: "retry"; target: number; conflict: boolean }
  | { op: "deleteVolume"; target: number }
  | { op: "deleteSnapshot"; target: number }
  | { op: "resize"; target: number; growSectors: number; shrink: boolean }
  | { op: "flush" }
  | { op: "reopen" };

/** A whole generated run: the first volume's size, the operations, and a seed choosing which pairs to diff. */
interface Scenario {
  firstSizeSectors: number;
  checkSeed: number;
  ops: Op[];
}

const rarely = fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 });
const sometimes = fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 });
const target = fc.nat(1000);

/** How big the generated images get: small ones touch many chunks; big ones span several map pages (1024 chunks each). */
interface Scale {
  sizeSectors: fc.Arbitrary<number>;
  maxGrowSectors: number;
  maxOffsetBytes: number;
  capacityBytes: number;
  writeLength: fc.Arbitrary<number>;
}

const MIXED_LENGTHS = fc.oneof(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 3 * CHUNK + 100 }), fc.integer({ min: 1, max: 300 * 1024 }));
const SMALL: Scale = {
  sizeSectors: fc.oneof(fc.integer({ min: 32, max: 512 }), fc.integer({ min: 4, max: 64 }).map((n) => n * 8)),
  maxGrowSectors: 64,
  maxOffsetBytes: 300 * 1024,
  capacityBytes: 256 * 1024 * 1024,
  writeLength: MIXED_LENGTHS,
};
// 3–5 MiB volumes grown by up to 2 MiB: resizes and clones cross the 4 MiB (1024-chunk) boundary where the map gains a level.
const BIG: Scale = { ...SMALL, sizeSectors: fc.integer({ min: 6 * 1024, max: 10 * 1024 }), maxGrowSectors: 4096, maxOffsetBytes: 8 * 1024 * 1024 };
// A 512 KiB SAN of 64–256 KiB volumes: provisioning refusals and writes that run out of free chunks happen often.
const TIGHT: Scale = { ...SMALL, sizeSectors: fc.integer({ min: 128, max: 512 }), capacityBytes: 512 * 1024, writeLength: fc.oneof(MIXED_LENGTHS, fc.integer({ min: 64 * 1024, max: 256 * 1024 })) };

// Random sequences of every operation, sized by `scale`.
function opsArb(scale: Scale, minLength: number, maxLength: number): fc.Arbitrary<Op[]> {
  const grow = fc.oneof(fc.constant(1), fc.integer({ min: 1, max: scale.maxGrowSectors }));
  const where = { target, at: fc.nat(scale.maxOffsetBytes), length: scale.writeLength, beyond: rarely };
  const pattern = fc.constantFrom("random" as const, "const" as const, "zero" as const);
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant("create" as const), sizeSectors: scale.sizeSectors, reuseName: fc.boolean() }) },
    { weight: 10, arbitrary: fc.record({ op: fc.constant("write" as const), pattern, seed: fc.nat(), toSnapshot: rarely, ...where }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("zero" as const), noHole: fc.boolean(), toSnapshot: rarely, ...where }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("trim" as const), toSnapshot: rarely, ...where }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("readBeyond" as const), ...where }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("snapshot" as const), target, reuseName: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("clone" as const), target, growSectors: fc.oneof(fc.constant(0), grow), smaller: rarely, reuseName: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("retry" as const), target, conflict: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("deleteVolume" as const), target }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("deleteSnapshot" as const), target }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("resize" as const), target, growSectors: grow, shrink: sometimes }) },
    { weight: 1, arbitrary: fc.constant({ op: "flush" as const }) },
    { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
  );
  return fc.array(op, { minLength, maxLength, size: "max" });
}

// A scenario of `scale`-sized images with between `minOps` and `maxOps` operations.
function scenarioArb(scale: Scale, minOps: number, maxOps: number): fc.Arbitrary<Scenario> {
  return fc.record({ firstSizeSectors: scale.sizeSectors, checkSeed: fc.nat(), ops: opsArb(scale, minOps, maxOps) });
}

let dirCounter = 0;

// How an image was created, so a retry can repeat the very same request (idempotency by name).
interface Origin {
  request: Parameters<San["createVolume"]>[0] | Parameters<San["createSnapshot"]>[0];
  kind: "volume" | "snapshot";
  sourceId?: string;
  sourceOrigin?: Origin;
  resized: boolean;
}

// One scenario's state: the engine, the model, image origins and names free for reuse.
interface Run {
  san: San;
  model: ReferenceModel;
  env: { now: () => number; newUniqueId: () => string };
  origins: Map<string, Origin>;
  nextName: number;
  deletedNames: string[];
}

/** Runs one scenario against a fresh SAN under /dev/shm and the model, checking after every op; removes the SAN. */
function runScenario(scenario: Scenario, options: { checkEvery?: number; capacityBytes?: number } = {}): void {
  const dir = path.join(SHM_ROOT, `esan-prop-${process.pid}-${++dirCounter}`);
  fs.rmSync(dir, { recursive: true, force: true });
  let clock = Date.parse("2025-01-01T00:00:00Z");
  let uniqueIds = 0;
  const env = { now: () => (clock += 1000), newUniqueId: () => `uid-${++uniqueIds}` };
  const limits = { maxSnapshotsPerVolume: 1000, snapshotRateCount: 1000 };
  const capacityBytes = options.capacityBytes ?? SMALL.capacityBytes;
  const san = San.create(dir, { capacityBytes, chunkSizeBytes: CHUNK, limits }, env);
  const run: Run = { san, model: new ReferenceModel(CHUNK, capacityBytes), env, origins: new Map(), nextName: 0, deletedNames: [] };
  try {
    run.san.createVolumeGroup(GROUP);
    applyOp(run, { op: "create", sizeSectors: scenario.firstSizeSectors, reuseName: false }, "first volume");
    const rng = mulberry32(scenario.checkSeed);
    scenario.ops.forEach((op, index) => {
      const label = `op #${index} ${JSON.stringify(op)}`;
      applyOp(run, op, label);
      if (op.op === "reopen") checkEngine(run.san, label);
      if (op.op === "reopen" || (index + 1) % (options.checkEvery ?? 1) === 0) checkAll(run, rng, label, op.op === "reopen");
    });
    checkAll(run, rng, "end of run", true);
    checkEngine(run.san, "end of run");
  } finally {
    try {
      run.san.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

// Applies one op to the model and the engine, expecting the same verdict from both.
function applyOp(run: Run, op: Op, label: string): void {
  const { san, model } = run;
  const volumes = model.ids("volume");
  const snapshots = model.ids("snapshot");
  const images = [...volumes, ...snapshots];
  const pick = (ids: string[], index: number): string | undefined => ids[index % Math.max(1, ids.length)];
  const newName = (reuse: boolean): string => (reuse ? run.deletedNames.shift() : undefined) ?? `i${run.nextName++}`;
  const created = (name: string, origin: Origin): void => {
    if (model.images.has(`${GROUP}/${name}`)) run.origins.set(`${GROUP}/${name}`, origin);
    else run.deletedNames.unshift(name);
  };
  switch (op.op) {
    case "create": {
      const request = { volumeGroup: GROUP, name: newName(op.reuseName), sizeBytes: op.sizeSectors * SECTOR };
      same(label, () => model.createVolume(`${GROUP}/${request.name}`, request.sizeBytes), () => san.createVolume(request));
      return created(request.name, { request, kind: "volume", resized: false });
    }
    case "write":
    case "zero":
    case "trim": {
      const id = op.toSnapshot && snapshots.length > 0 ? pick(snapshots, op.target) : pick(volumes, op.target);
      if (id === undefined) return;
      const { offset, length } = resolveRange(model.get(id).bytes.length, op);
      const before = model.saveImage(id);
      const freeBytes = san.info().freeBytes;
      // The model cannot tell when chunks run out; a refusal is fine when the touched chunks could exceed the free space.
      const onCapacity = (): void => {
        const touchedBytes = chunksOf(CHUNK, offset, length).length * CHUNK;
        if (freeBytes >= touchedBytes) throw new Error(`${label}: CapacityExceeded with ${freeBytes} bytes free for ${touchedBytes} bytes of chunks`);
        model.restoreImage(id, before);
      };
      let verdict: string;
      if (op.op === "write") {
        const data = makePattern(op.pattern, op.seed, length);
        verdict = same(label, () => model.write(id, offset, data), () => san.write(id, offset, data), onCapacity);
      } else if (op.op === "zero") {
        const zero = (): void => san.writeZeroes(id, offset, length, { noHole: op.noHole });
        verdict = same(label, () => model.zero(id, offset, length), zero, onCapacity);
        // noHole keeps the range allocated: every chunk it touched must still be mapped.
        const covered = coveredChunks(CHUNK, san.allocatedRanges(id));
        const unmapped = verdict === "success" && op.noHole ? chunksOf(CHUNK, offset, length).filter((chunk) => !covered.has(chunk)) : [];
        if (unmapped.length > 0) throw new Error(`${label}: writeZeroes noHole left chunks ${unmapped.join(",")} of ${id} unallocated`);
      } else {
        verdict = same(label, () => model.trim(id, offset, length), () => san.trim(id, offset, length), onCapacity);
      }
      if (verdict !== "success") expect(model.saveImage(id), `${label}: a refused op changed the model`).toEqual(before);
      return;
    }
    case "readBeyond": {
      const id = pick(images, op.target);
      if (id === undefined) return;
      const { offset, length } = resolveRange(model.get(id).bytes.length, { ...op, beyond: true });
      same(label, () => model.read(id, offset, length), () => san.read(id, offset, length));
      return;
    }
    case "snapshot": {
      const sourceId = pick(volumes, op.target);
      if (sourceId === undefined) return;
      const request = { volumeGroup: GROUP, name: newName(op.reuseName), sourceVolumeId: sourceId };
      same(label, () => model.snapshot(`${GROUP}/${request.name}`, sourceId), () => san.createSnapshot(request));
      return created(request.name, { request, kind: "snapshot", sourceId, sourceOrigin: run.origins.get(sourceId), resized: false });
    }
    case "clone": {
      const sourceId = pick(images, op.target);
      if (sourceId === undefined) return;
      const { kind, bytes } = model.get(sourceId);
      const size = bytes.length;
      const sizeBytes = op.smaller && size > SECTOR ? size - SECTOR * (1 + (op.growSectors % (size / SECTOR - 1))) : size + op.growSectors * SECTOR;
      const request = { volumeGroup: GROUP, name: newName(op.reuseName), sizeBytes, source: { kind, id: sourceId } };
      same(label, () => model.clone(`${GROUP}/${request.name}`, sourceId, sizeBytes), () => san.createVolume(request));
      return created(request.name, { request, kind: "volume", sourceId, sourceOrigin: run.origins.get(sourceId), resized: false });
    }
    case "retry":
      return retryCreate(run, op, label);
    case "deleteVolume":
    case "deleteSnapshot": {
      const kind = op.op === "deleteVolume" ? "volume" : "snapshot";
      const id = pick(kind === "volume" ? volumes : snapshots, op.target);
      if (id === undefined) return;
      same(label, () => model.delete(id, kind), () => (kind === "volume" ? san.deleteVolume(id) : san.deleteSnapshot(id)));
      run.origins.delete(id);
      run.deletedNames.push(id.slice(GROUP.length + 1));
      return;
    }
    case "resize": {
      const id = pick(volumes, op.target);
      if (id === undefined) return;
      const size = model.get(id).bytes.length;
      const sizeBytes = op.shrink ? size - op.growSectors * SECTOR : size + op.growSectors * SECTOR;
      if (sizeBytes <= 0) return;
      const before = model.saveImage(id);
      if (same(label, () => model.resize(id, sizeBytes), () => san.resizeVolume(id, sizeBytes)) !== "success") {
        expect(model.saveImage(id), `${label}: a refused resize changed the model`).toEqual(before);
      } else {
        const origin = run.origins.get(id);
        if (origin !== undefined) origin.resized = true;
      }
      return;
    }
    case "flush":
      return san.flush();
    case "reopen":
      san.close();
      run.san = San.open(san.dataDir, run.env);
      return;
  }
}

// Re-sends the request that created an image: the same one returns the existing image unchanged, another is AlreadyExists.
function retryCreate(run: Run, op: { target: number; conflict: boolean }, label: string): void {
  const ids = [...run.origins.keys()];
  const id = ids[op.target % Math.max(1, ids.length)];
  const origin = id === undefined ? undefined : run.origins.get(id);
  if (origin === undefined || origin.resized) return;
  // A retry is only "the same request" while its source is the very incarnation it was made from.
  if (origin.sourceId !== undefined && run.origins.get(origin.sourceId) !== origin.sourceOrigin) return;
  const { request } = origin;
  const refuse = (): never => {
    throw new ModelRefusal("AlreadyExists", `${id} exists with other parameters`);
  };
  if (!op.conflict) {
    same(label, () => undefined, () => ("sizeBytes" in request ? run.san.createVolume(request) : run.san.createSnapshot(request)));
  } else if ("sizeBytes" in request) {
    same(label, refuse, () => run.san.createVolume({ ...request, sizeBytes: request.sizeBytes + SECTOR }));
  } else {
    // A volume under the snapshot's name: volumes and snapshots share one name space.
    same(label, refuse, () => run.san.createVolume({ volumeGroup: GROUP, name: request.name, sizeBytes: CHUNK }));
  }
}

// The model's verdict (success or a refusal code) must match the engine's; returns it. The model changes only on success.
// `onCapacity` accepts (and undoes in the model) a CapacityExceeded the model could not predict.
function same(label: string, modelAction: () => void, engineAction: () => unknown, onCapacity?: () => void): string {
  let expected = "success";
  try {
    modelAction();
  } catch (error) {
    if (!(error instanceof ModelRefusal)) throw error;
    expected = error.code;
  }
  let actual = "success";
  let message = "";
  try {
    engineAction();
  } catch (error) {
    if (!(error instanceof EsanError)) throw error;
    actual = error.code;
    message = `: ${error.message}`;
  }
  if (expected === "success" && actual === "CapacityExceeded" && onCapacity !== undefined) {
    onCapacity();
    return actual;
  }
  if (actual !== expected) throw new Error(`${label}: model says ${expected}, engine says ${actual}${message}`);
  return expected;
}

// Turns a generated location into a concrete range: inside the image, or (beyond) crossing or past its end.
function resolveRange(sizeBytes: number, where: Where): ByteRange {
  if (!where.beyond) {
    const offset = where.at % sizeBytes;
    return { offset, length: 1 + ((where.length - 1) % (sizeBytes - offset)) };
  }
  const offset = where.at % 2 === 0 ? where.at % sizeBytes : sizeBytes + (where.at % 1024);
  const overshoot = where.length % 3 === 0 ? 1 : 1 + (where.length % CHUNK);
  return { offset, length: Math.max(0, sizeBytes - offset) + overshoot };
}

// Write payloads: pseudo-random bytes, a constant non-zero byte, or explicit zeroes.
function makePattern(pattern: "random" | "const" | "zero", seed: number, length: number): Uint8Array {
  if (pattern === "zero") return new Uint8Array(length);
  if (pattern === "const") return new Uint8Array(length).fill(1 + (seed % 255));
  const next = mulberry32(seed);
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = next() & 0xff;
  return data;
}

// A small seeded PRNG (mulberry32) returning 32-bit unsigned integers.
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    let t = (state = (state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

// Compares every live image, its allocation map, diffs (a few pairs, or all when `allPairs`) and SAN totals with the model.
function checkAll(run: Run, rng: () => number, label: string, allPairs: boolean): void {
  const { san, model } = run;
  const ids = [...model.images.keys()];
  // Generations of the chunks each image maps: one generation is one extent, shared only by snapshot or clone.
  const mappedGens = new Map<string, number[]>();
  const owners = new Map<number, number>();
  const usedBytes = new Map<string, number>();
  for (const id of ids) {
    const image = model.get(id);
    const info = image.kind === "volume" ? san.getVolume(id) : san.getSnapshot(id);
    usedBytes.set(id, info.usedBytes);
    if (info.sizeBytes !== image.bytes.length) throw new Error(`${label}: ${id} has size ${info.sizeBytes}, model ${image.bytes.length}`);
    const content = san.read(id, 0, image.bytes.length);
    if (!content.equals(image.bytes)) {
      const at = content.findIndex((byte, i) => byte !== image.bytes[i]);
      throw new Error(`${label}: ${id} differs at byte ${at} (chunk ${Math.floor(at / CHUNK)}): engine ${content[at]}, model ${image.bytes[at]}`);
    }
    const gens = [...checkAllocated(san, model, id, label)].map((chunk) => model.genAt(id, chunk));
    mappedGens.set(id, gens);
    for (const gen of gens) owners.set(gen, (owners.get(gen) ?? 0) + 1);
  }
  for (const id of ids) {
    const exclusive = (mappedGens.get(id) ?? []).filter((gen) => owners.get(gen) === 1).length;
    expect(usedBytes.get(id), `${label}: usedBytes of ${id} (chunks no other image maps)`).toBe(exclusive * CHUNK);
  }
  const pairs = allPairs ? ids.flatMap((a) => ids.map((b) => [a, b] as const)) : ids.slice(0, 3).map(() => [ids[rng() % ids.length] ?? "", ids[rng() % ids.length] ?? ""] as const);
  for (const [a, b] of pairs) checkDiff(san, model, a, b, label);
  const info = san.info();
  expect(info.provisionedBytes, `${label}: provisionedBytes`).toBe(model.provisionedBytes());
  expect(info.volumeCount, `${label}: volumeCount`).toBe(model.ids("volume").length);
  expect(info.snapshotCount, `${label}: snapshotCount`).toBe(model.ids("snapshot").length);
  expect(info.physicalBytes, `${label}: physicalBytes (distinct mapped generations)`).toBe(owners.size * CHUNK);
  expect(info.freeBytes, `${label}: freeBytes`).toBe(info.capacityBytes - info.physicalBytes);
}

// allocatedRanges covers every chunk holding data and no chunk this image's lineage never wrote; returns the chunks.
function checkAllocated(san: San, model: ReferenceModel, id: string, label: string): Set<number> {
  const ranges = san.allocatedRanges(id);
  const what = `${label}: allocatedRanges(${id})`;
  checkShape(ranges, CHUNK, model.get(id).bytes.length, what);
  const covered = coveredChunks(CHUNK, ranges);
  const missing = model.nonZeroChunks(id).filter((chunk) => !covered.has(chunk));
  if (missing.length > 0) throw new Error(`${what} misses chunks holding data: ${missing.join(",")}; ranges ${JSON.stringify(ranges)}`);
  const neverWritten = [...covered].filter((chunk) => model.genAt(id, chunk) === 0);
  if (neverWritten.length > 0) throw new Error(`${what} covers never-written chunks ${neverWritten.join(",")}`);
  return covered;
}

// diff(a, b) is shaped right, sound (covers every differing chunk) and precise (covers only chunks not shared).
function checkDiff(san: San, model: ReferenceModel, a: string, b: string, label: string): void {
  const result = san.diff(a, b);
  const what = `${label}: diff(${a}, ${b})`;
  const end = Math.max(model.get(a).bytes.length, model.get(b).bytes.length);
  checkShape(result.ranges, CHUNK, end, what);
  expect(result.chunkSizeBytes, `${what}: chunkSizeBytes`).toBe(CHUNK);
  expect(result.changedBytes, `${what}: changedBytes`).toBe(result.ranges.reduce((sum, range) => sum + range.length, 0));
  const covered = coveredChunks(CHUNK, result.ranges);
  const missed = model.differingChunks(a, b).filter((chunk) => !covered.has(chunk));
  if (missed.length > 0) throw new Error(`${what} misses differing chunks ${missed.join(",")}; ranges ${JSON.stringify(result.ranges)}`);
  const shared = [...covered].filter((chunk) => model.genAt(a, chunk) === model.genAt(b, chunk));
  if (shared.length > 0) throw new Error(`${what} reports chunks both images share (same generation): ${shared.join(",")}`);
}

// The engine's own consistency check must pass; faults are printed on failure.
function checkEngine(san: San, label: string): void {
  const report = san.check();
  expect(report.faults, `${label}: san.check() faults`).toEqual([]);
  expect(report.ok, `${label}: san.check().ok`).toBe(true);
}

describe("engine vs flat reference model", () => {
  it("keeps contents, allocation maps, diffs and totals equal to the model under random operations", () => {
    fc.assert(fc.property(scenarioArb(SMALL, 0, 40), (scenario) => runScenario(scenario)), { numRuns: 100 });
  });

  it("survives long runs with reopens when checked every few ops", () => {
    fc.assert(fc.property(scenarioArb(SMALL, 60, 120), (scenario) => runScenario(scenario, { checkEvery: 8 })), { numRuns: 20 });
  });

  it("refuses over-provisioning and writes beyond the free chunks without changing anything", () => {
    const capacityBytes = TIGHT.capacityBytes;
    fc.assert(fc.property(scenarioArb(TIGHT, 20, 50), (scenario) => runScenario(scenario, { capacityBytes })), { numRuns: 60 });
  });

  it("stays equal on sparse multi-page volumes that grow past one map page", () => {
    fc.assert(fc.property(scenarioArb(BIG, 10, 30), (scenario) => runScenario(scenario, { checkEvery: 5 })), { numRuns: 12 });
  });
});
