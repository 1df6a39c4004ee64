// Crash test: SIGKILL a writer process at random moments; the SAN must reopen consistent, with every durable byte and
// every acknowledged snapshot intact. A failure prints its seed and keeps its data directory and journals; rerunning
// with ESAN_CRASH_SEED=<seed> replays the same operation stream, though kill moments are real time and so differ.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";
import type { ListPage } from "../src/storage/types.ts";
import { contentByte, contentKey, fillContent, mulberry32 } from "./fixtures/crash-writer.ts";
import type { CrashOp, JournalLine, WriterConfig, WriterGroup, WriterSnapshot, WriterVolume } from "./fixtures/crash-writer.ts";

const WRITER = fileURLToPath(new URL("./fixtures/crash-writer.ts", import.meta.url));
const SEED = process.env.ESAN_CRASH_SEED === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(process.env.ESAN_CRASH_SEED);
const VG = "crash";
const MIB = 1 << 20;
const ITERATIONS = 20;
const MIN_ITERATIONS = 8;
const BUDGET_MS = 40_000;

type VolumeModel = WriterVolume & { data: Buffer };
type SnapshotModel = WriterSnapshot & { data: Buffer };

/** What the SAN holds after the last verified reopen: exact and, since the parent closed the SAN, durable. */
interface Model {
  volumes: Map<string, VolumeModel>;
  snapshots: Map<string, SnapshotModel>;
  groups: Map<string, WriterGroup>;
}

/** A write (key = content key) or a zero/trim (key = null) as seen by one volume. */
interface IoOp {
  seq: number;
  offset: number;
  length: number;
  key: number | null;
  durable: boolean;
}

/** One volume during an iteration: durable content at the start, exact content after acknowledged ops, and the ops. */
interface Track {
  volume: WriterVolume;
  base: Buffer;
  exact: Buffer;
  ops: IoOp[];
}

interface Entry {
  seq: number;
  op: CrashOp;
  done: boolean;
  snapshotIds: string[];
}

/** The operation that was running (or had returned unjournaled) at the kill, with the content it would capture. */
interface Inflight {
  op: CrashOp;
  data: Map<string, Buffer>;
}

interface Expectation {
  tracks: Map<string, Track>;
  snapshots: Map<string, SnapshotModel>;
  groups: Map<string, WriterGroup>;
  inflight: Inflight | null;
}

function readJournal(journalPath: string): { opened: boolean; entries: Entry[] } {
  const text = fs.existsSync(journalPath) ? fs.readFileSync(journalPath, "utf8") : "";
  const lines = text.split("\n").slice(0, -1); // a line cut by the kill has no newline and is dropped
  const entries: Entry[] = [];
  let opened = false;
  for (const raw of lines) {
    const line = JSON.parse(raw) as JournalLine;
    if (line.t === "open") opened = true;
    else if (line.t === "intent") entries.push({ seq: line.seq, op: line.op, done: false, snapshotIds: [] });
    else {
      const entry = entries.at(-1);
      if (entry?.seq !== line.seq) throw new Error(`journal ${journalPath}: done ${line.seq} without its intent`);
      entry.done = true;
      entry.snapshotIds = line.snapshotIds ?? [];
    }
  }
  return { opened, entries };
}

function paint(target: Buffer, io: IoOp): void {
  if (io.key === null) target.fill(0, io.offset, io.offset + io.length);
  else fillContent(io.key, io.offset, io.length).copy(target, io.offset);
}

/** Replays the journal over the model: what must exist, what each image must hold, and the in-flight op. */
function replay(model: Model, entries: Entry[], seed: number): Expectation {
  const tracks = new Map<string, Track>();
  for (const [id, v] of model.volumes) tracks.set(id, { volume: v, base: v.data, exact: Buffer.from(v.data), ops: [] });
  const snapshots = new Map(model.snapshots);
  const groups = new Map(model.groups);
  // A returned flush makes every write acknowledged before it durable, so only the last one matters.
  const lastFlush = Math.max(-1, ...entries.filter((e) => e.done && e.op.kind === "flush").map((e) => e.seq));
  const trackOf = (id: string): Track => {
    const track = tracks.get(id);
    if (track === undefined) throw new Error(`journal names unknown volume ${id}`);
    return track;
  };
  let inflight: Inflight | null = null;
  for (const { seq, op, done, snapshotIds } of entries) {
    if (inflight !== null) throw new Error(`journal has op ${seq} after unfinished op ${inflight.op.kind}`);
    const data = new Map<string, Buffer>();
    switch (op.kind) {
      case "write":
      case "zero":
      case "trim": {
        const track = trackOf(op.volumeId);
        const key = op.kind === "write" ? contentKey(seed, seq) : null;
        const io = { seq, offset: op.offset, length: op.length, key, durable: done && (op.fua || seq < lastFlush) };
        track.ops.push(io);
        if (done) paint(track.exact, io);
        break;
      }
      case "snapshot": {
        const source = trackOf(op.sourceId).volume;
        const snapshot = { id: op.id, sourceId: source.id, sizeBytes: source.sizeBytes, sectorSize: source.sectorSize, groupSnapshotId: null, data: Buffer.from(trackOf(op.sourceId).exact) };
        if (done) snapshots.set(op.id, snapshot);
        data.set(op.id, snapshot.data);
        break;
      }
      case "deleteSnapshot":
        if (done) snapshots.delete(op.id);
        break;
      case "groupSnapshot":
        op.volumeIds.forEach((volumeId, i) => {
          const track = trackOf(volumeId);
          data.set(volumeId, Buffer.from(track.exact));
          const id = snapshotIds[i];
          if (done && id !== undefined) {
            snapshots.set(id, { id, sourceId: volumeId, sizeBytes: track.volume.sizeBytes, sectorSize: track.volume.sectorSize, groupSnapshotId: op.id, data: Buffer.from(track.exact) });
          }
        });
        if (done) groups.set(op.id, { id: op.id, snapshotIds });
        break;
      case "deleteGroupSnapshot":
        if (done) {
          for (const id of groups.get(op.id)?.snapshotIds ?? []) snapshots.delete(id);
          groups.delete(op.id);
        }
        break;
      case "clone": {
        const source = op.sourceKind === "volume" ? trackOf(op.sourceId).exact : snapshots.get(op.sourceId)?.data;
        if (source === undefined) throw new Error(`journal clones unknown snapshot ${op.sourceId}`);
        const content = Buffer.alloc(op.sizeBytes);
        source.copy(content);
        // A returned createVolume is a commit: the clone and its initial content are durable.
        const volume = { id: op.id, sizeBytes: op.sizeBytes, sectorSize: op.sectorSize, clone: true, sparse: false };
        if (done) tracks.set(op.id, { volume, base: content, exact: Buffer.from(content), ops: [] });
        data.set(op.id, content);
        break;
      }
      case "deleteVolume":
        if (done) tracks.delete(op.id);
        break;
      case "flush":
        break;
    }
    if (!done) inflight = { op, data };
  }
  return { tracks, snapshots, groups, inflight };
}

/** Each byte must hold its last durable value, or the value of a later (non-durable or in-flight) op covering it. */
function checkVolume(track: Track, actual: Buffer, faults: string[]): void {
  const size = track.base.length;
  const durable = Buffer.from(track.base);
  const lastDurable = new Int32Array(size).fill(-1);
  track.ops.forEach((io, k) => {
    if (!io.durable) return;
    paint(durable, io);
    lastDurable.fill(k, io.offset, io.offset + io.length);
  });
  if (actual.equals(durable)) return;
  const justified = new Uint8Array(size);
  track.ops.forEach((io, k) => {
    const end = io.offset + io.length;
    if (io.durable || actual.subarray(io.offset, end).equals(durable.subarray(io.offset, end))) return;
    for (let b = io.offset; b < end; b++) {
      const value = io.key === null ? 0 : contentByte(io.key, b);
      if (actual[b] !== durable[b] && actual[b] === value && (lastDurable[b] ?? 0) < k) justified[b] = 1;
    }
  });
  const bad = (b: number): boolean => actual[b] !== durable[b] && justified[b] !== 1;
  let reported = 0;
  for (let b = 0; b < size && reported < 3; b++) {
    if (!bad(b)) continue;
    // A run ends after 16 good bytes, so a few bytes that match by chance do not split it.
    let end = b + 1;
    for (let gap = 0; end < size && gap < 16; end++) gap = bad(end) ? 0 : gap + 1;
    while (!bad(end - 1)) end--;
    const owner = track.ops[lastDurable[b] ?? -1];
    faults.push(
      `volume ${track.volume.id} bytes [${b}, ${end}) read ${actual.subarray(b, Math.min(end, b + 4)).toString("hex")}… but the durable ` +
        `value is ${durable.subarray(b, Math.min(end, b + 4)).toString("hex")}… (${owner === undefined ? "from before this run" : `written by durable op ${owner.seq}`}) ` +
        `and no later op covering them wrote that`,
    );
    reported++;
    b = end;
  }
}

function listAll<T>(list: (startingToken: string) => ListPage<T>): T[] {
  const all: T[] = [];
  let token = "";
  do {
    const page = list(token);
    all.push(...page.entries);
    token = page.nextToken;
  } while (token !== "");
  return all;
}

function sameIds(what: string, actual: Iterable<string>, expected: Iterable<string>, faults: string[]): void {
  const a = new Set(actual);
  const e = new Set(expected);
  for (const id of e) if (!a.has(id)) faults.push(`${what} ${id} was acknowledged but is missing after the crash`);
  for (const id of a) if (!e.has(id)) faults.push(`${what} ${id} exists but was never acknowledged nor in flight`);
}

/** Compares the reopened SAN with the expectation; returns the faults and the model the next writer starts from. */
function verify(san: San, exp: Expectation): { faults: string[]; model: Model } {
  const faults: string[] = [];
  const { tracks, snapshots, groups, inflight } = exp;
  const op = inflight?.op;
  const volumes = listAll((t) => san.listVolumes({ volumeGroup: VG, startingToken: t }));
  const volumeIds = new Set(volumes.map((v) => v.id));
  // An in-flight create or delete may have committed or not; the SAN's state decides, then must be exact.
  if (op?.kind === "clone" && volumeIds.has(op.id)) {
    const content = inflight?.data.get(op.id) ?? Buffer.alloc(0);
    tracks.set(op.id, { volume: { id: op.id, sizeBytes: op.sizeBytes, sectorSize: op.sectorSize, clone: true, sparse: false }, base: content, exact: content, ops: [] });
  }
  if (op?.kind === "deleteVolume" && !volumeIds.has(op.id)) tracks.delete(op.id);
  sameIds("volume", volumeIds, tracks.keys(), faults);
  const model: Model = { volumes: new Map(), snapshots: new Map(), groups: new Map() };
  for (const info of volumes) {
    const track = tracks.get(info.id);
    if (track === undefined) continue;
    if (info.sizeBytes !== track.volume.sizeBytes) faults.push(`volume ${info.id} has ${info.sizeBytes} bytes, expected ${track.volume.sizeBytes}`);
    const actual = san.read(info.id, 0, track.volume.sizeBytes);
    checkVolume(track, actual, faults);
    model.volumes.set(info.id, { ...track.volume, data: actual });
  }

  const groupList = listAll((t) => san.listGroupSnapshots({ volumeGroup: VG, startingToken: t }));
  const snapshotList = listAll((t) => san.listSnapshots({ volumeGroup: VG, startingToken: t }));
  const snapshotIds = new Set(snapshotList.map((s) => s.id));
  if (op?.kind === "snapshot" && snapshotIds.has(op.id)) {
    const source = tracks.get(op.sourceId)?.volume ?? model.volumes.get(op.sourceId);
    const data = inflight?.data.get(op.id);
    if (source !== undefined && data !== undefined) {
      snapshots.set(op.id, { id: op.id, sourceId: source.id, sizeBytes: source.sizeBytes, sectorSize: source.sectorSize, groupSnapshotId: null, data });
    }
  }
  if (op?.kind === "deleteSnapshot" && !snapshotIds.has(op.id)) snapshots.delete(op.id);
  const group = groupList.find((g) => g.id === (op?.kind === "groupSnapshot" || op?.kind === "deleteGroupSnapshot" ? op.id : ""));
  if (op?.kind === "groupSnapshot" && group !== undefined) {
    // All members or none: a group snapshot is one commit.
    group.snapshotIds.forEach((id, i) => {
      const volume = tracks.get(group.sourceIds[i] ?? "")?.volume;
      const data = inflight?.data.get(group.sourceIds[i] ?? "");
      if (volume === undefined || data === undefined) faults.push(`group snapshot ${group.id} member ${id} has unexpected source ${group.sourceIds[i]}`);
      else snapshots.set(id, { id, sourceId: volume.id, sizeBytes: volume.sizeBytes, sectorSize: volume.sectorSize, groupSnapshotId: group.id, data });
    });
    groups.set(group.id, { id: group.id, snapshotIds: group.snapshotIds });
  }
  if (op?.kind === "deleteGroupSnapshot" && group === undefined) {
    for (const id of groups.get(op.id)?.snapshotIds ?? []) snapshots.delete(id);
    groups.delete(op.id);
  }
  sameIds("snapshot", snapshotIds, snapshots.keys(), faults);
  sameIds("group snapshot", groupList.map((g) => g.id), groups.keys(), faults);
  for (const g of groupList) {
    const expected = groups.get(g.id);
    if (expected !== undefined && g.snapshotIds.join() !== expected.snapshotIds.join()) {
      faults.push(`group snapshot ${g.id} has members [${g.snapshotIds.join()}], expected [${expected.snapshotIds.join()}]`);
    }
  }
  for (const snapshot of snapshotList) {
    const expected = snapshots.get(snapshot.id);
    if (expected === undefined) continue;
    const actual = san.read(snapshot.id, 0, expected.sizeBytes);
    if (snapshot.sizeBytes !== expected.sizeBytes || !actual.equals(expected.data)) {
      const at = actual.findIndex((byte, i) => byte !== expected.data[i]);
      faults.push(`snapshot ${snapshot.id} (of ${expected.sourceId}) differs from its volume at creation, first at byte ${at}`);
    }
    model.snapshots.set(snapshot.id, expected);
  }
  for (const g of groupList) model.groups.set(g.id, { id: g.id, snapshotIds: g.snapshotIds });
  const info = san.info();
  if (info.volumeCount !== volumes.length || info.snapshotCount !== snapshotList.length) {
    faults.push(`info() counts ${info.volumeCount} volumes and ${info.snapshotCount} snapshots; listings show ${volumes.length} and ${snapshotList.length}`);
  }
  return { faults, model };
}

async function waitForOpen(journalPath: string, hasExited: () => boolean, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(fs.existsSync(journalPath) && fs.readFileSync(journalPath, "utf8").includes('"t":"open"'))) {
    if (hasExited()) throw new Error(`writer exited before opening the SAN: ${stderr()}`);
    if (Date.now() > deadline) throw new Error(`writer did not open the SAN within 20 s: ${stderr()}`);
    await sleep(5);
  }
}

/** Runs one writer and SIGKILLs it at a random moment; checks the live lock on the way. */
async function runAndKill(config: WriterConfig, rng: () => number, probeLock: boolean): Promise<number> {
  const child = spawn(process.execPath, [WRITER, JSON.stringify(config)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? `code ${code}`));
    child.once("error", (err) => resolve(`spawn error ${err.message}`));
  });
  try {
    if (rng() < 0.15) {
      await sleep(100 + rng() * 300); // may land in module loading, in San.open (recovering from the last kill) or in the first ops
    } else {
      await waitForOpen(config.journalPath, () => child.exitCode !== null || child.pid === undefined, () => stderr);
      if (probeLock) {
        const second = (): void => San.open(config.dataDir).close();
        expect(second, "a second San.open while the writer runs must fail").toThrow(expect.objectContaining({ code: "DataDirInUse" }));
      }
      await sleep(20 + rng() * 280);
    }
  } finally {
    child.kill("SIGKILL");
  }
  const how = await exited;
  if (how !== "SIGKILL") throw new Error(`writer ended by itself (${how}) before the kill:\n${stderr}`);
  return child.pid ?? -1;
}

function createSan(dataDir: string, chunkSizeBytes: number): Model {
  const san = San.create(dataDir, { capacityBytes: 512 * MIB, chunkSizeBytes, limits: { snapshotRateCount: 1_000_000 } });
  san.createVolumeGroup(VG);
  const model: Model = { volumes: new Map(), snapshots: new Map(), groups: new Map() };
  const shapes: [string, number, 512 | 4096][] = [["v0", 2 * MIB, 512], ["v1", 3 * MIB, 512], ["v2", 2 * MIB, 4096], ["sparse", 8 * MIB, 512]];
  for (const [name, sizeBytes, sectorSize] of shapes) {
    const info = san.createVolume({ volumeGroup: VG, name, sizeBytes, sectorSize });
    model.volumes.set(info.id, { id: info.id, sizeBytes, sectorSize, clone: false, sparse: name === "sparse", data: Buffer.alloc(sizeBytes) });
  }
  san.close();
  return model;
}

describe("crash consistency under SIGKILL", () => {
  it.each([4096, 65536])("chunk size %i: every kill reopens to a consistent SAN with durable data and snapshots intact", async (chunkSizeBytes) => {
    const seed = (SEED ^ chunkSizeBytes) >>> 0;
    const rng = mulberry32(seed);
    const root = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "esan-crash-"));
    const dataDir = path.join(root, "san");
    let model = createSan(dataDir, chunkSizeBytes);
    const started = Date.now();
    let seqStart = 0;
    let iterations = 0;
    let totalOps = 0;
    for (; iterations < ITERATIONS && Date.now() - started < BUDGET_MS; iterations++) {
      const journalPath = path.join(root, `journal-${iterations}.jsonl`);
      const config: WriterConfig = {
        dataDir, journalPath, seed, seqStart, volumeGroup: VG, maxVolumes: 7, maxSnapshots: 12, quiet: rng() < 0.3,
        volumes: [...model.volumes.values()].map(({ data: _, ...v }) => v),
        snapshots: [...model.snapshots.values()].map(({ data: _, ...s }) => s),
        groupSnapshots: [...model.groups.values()],
      };
      const context = `seed ${SEED} (ESAN_CRASH_SEED=${SEED}), chunk ${chunkSizeBytes}, iteration ${iterations}, data in ${root}`;
      const pid = await runAndKill(config, rng, iterations % 4 === 1);
      const { opened, entries } = readJournal(journalPath);
      if (opened) {
        // The dead writer's lock is still on disk and must not block the next open.
        expect(fs.readFileSync(path.join(dataDir, "lock"), "utf8").trim(), context).toBe(String(pid));
      }
      const san = San.open(dataDir);
      try {
        const report = san.check();
        expect(report.faults, `check() after the kill, ${context}`).toEqual([]);
        expect(report.ok, context).toBe(true);
        const { faults, model: next } = verify(san, replay(model, entries, seed));
        expect(faults, `${context}, ${entries.length} ops, in flight: ${JSON.stringify(entries.at(-1))}`).toEqual([]);
        model = next;
      } finally {
        san.close();
      }
      seqStart = (entries.at(-1)?.seq ?? seqStart - 1) + 1;
      totalOps += entries.length;
    }
    expect(iterations).toBeGreaterThanOrEqual(MIN_ITERATIONS);
    expect(totalOps, "the writers should get real work done between kills").toBeGreaterThan(iterations);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
