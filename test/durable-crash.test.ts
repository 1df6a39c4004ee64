// Crash test of the durable tier: a worker process exports a volume holding tens of MiB, restores disk snapshots and
// writes to the restored volumes while they hydrate, and is SIGKILLed at random moments, many times over. After each
// kill the SAN reopens and resumes its jobs. An export must finish with exactly the bytes its source held when it was
// requested, never start over or lose progress, and never expose half a member; a hydrating volume must read right at
// once and end with its disk snapshot's data and every write flushed before the kill.
// A failure prints the seed and keeps the data directory and journals. ESAN_DURABLE_CRASH_SEED=<seed> replays the
// workers' choices; the kill moments are real time and so differ.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";
import type { DiskSnapshotInfo } from "../src/storage/types.ts";
import { fillPattern, fmix32, mulberry32 } from "./fixtures/durable-crash-worker.ts";
import type { JournalLine, WorkerConfig, WorkerOp } from "./fixtures/durable-crash-worker.ts";

const WORKER = fileURLToPath(new URL("./fixtures/durable-crash-worker.ts", import.meta.url));
const SEED = process.env.ESAN_DURABLE_CRASH_SEED === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(process.env.ESAN_DURABLE_CRASH_SEED);
const VG = "vg";
/** Volumes the parent restores members into to check them; the worker never sees them. */
const CHECK_VG = "chk";
const SOURCE = `${VG}/src`;
const MIB = 1 << 20;
const CHUNK = 64 * 1024;
const SOURCE_BYTES = 32 * MIB;
/** How much of the source the first export copies: big enough that a kill often lands inside a full export. */
const INITIAL_DATA_BYTES = 28 * MIB;
const MAX_CYCLES = 60;
const MIN_CYCLES = 10;
const BUDGET_MS = 60_000;
/** Ready members kept between cycles; older ones are deleted, which folds them into their successors. */
const KEEP_READY = 3;

/** A disk snapshot as the parent knows it: its exact content and the highest completionPercent anyone saw. */
interface Member {
  content: Buffer;
  percent: number;
  verified: boolean;
}

/** A restored volume: exact content as last verified, its disk snapshot, and the hydration progress last seen. */
interface Restored {
  content: Buffer;
  from: string;
  percent: number;
  complete: boolean;
}

/** What the SAN holds when the parent closes it: exact, since the parent flushed and verified it. */
interface Model {
  source: Buffer;
  members: Map<string, Member>;
  restored: Map<string, Restored>;
}

interface Entry {
  seq: number;
  op: WorkerOp;
  done: boolean;
}

interface Journal {
  opened: boolean;
  entries: Entry[];
  /** Highest completionPercent the worker read back for each export. */
  progress: Map<string, number>;
  /** Highest hydration percent (and whether complete) the worker read back for each restored volume. */
  hydration: Map<string, { percent: number; complete: boolean }>;
  error: string | null;
}

function readJournal(journalPath: string): Journal {
  const text = fs.existsSync(journalPath) ? fs.readFileSync(journalPath, "utf8") : "";
  const journal: Journal = { opened: false, entries: [], progress: new Map(), hydration: new Map(), error: null };
  for (const raw of text.split("\n").slice(0, -1)) {
    // A line cut by the kill has no newline and is dropped above.
    const line = JSON.parse(raw) as JournalLine;
    switch (line.t) {
      case "open":
        journal.opened = true;
        break;
      case "intent":
        journal.entries.push({ seq: line.seq, op: line.op, done: false });
        break;
      case "done": {
        const entry = journal.entries.at(-1);
        if (entry?.seq !== line.seq) throw new Error(`journal ${journalPath}: done ${line.seq} without its intent`);
        entry.done = true;
        break;
      }
      case "progress":
        journal.progress.set(line.name, Math.max(line.percent, journal.progress.get(line.name) ?? 0));
        break;
      case "hydration": {
        const seen = journal.hydration.get(line.id);
        journal.hydration.set(line.id, { percent: Math.max(line.percent, seen?.percent ?? 0), complete: line.state === "complete" || (seen?.complete ?? false) });
        break;
      }
      case "error":
        journal.error = line.message;
        break;
    }
  }
  return journal;
}

/** A write (key = pattern key) or a zeroing (key = null) as one volume saw it. */
interface IoOp {
  seq: number;
  offset: number;
  length: number;
  key: number | null;
  durable: boolean;
}

/**
 * One volume during a cycle: its content when the cycle began (shared, never changed), its exact content after
 * acknowledged ops (copied from the base at the first write, as restore churns make hundreds of untouched tracks),
 * and the ops.
 */
interface Track {
  id: string;
  from: string;
  base: Buffer;
  exact: Buffer | null;
  ops: IoOp[];
}

interface Expectation {
  source: Track;
  /** Members whose export returned, with the source's content at that moment. */
  exported: Map<string, Buffer>;
  /** Members the worker waited for: they were at 100%. */
  waited: Set<string>;
  inflightExport: { name: string; content: Buffer } | null;
  tracks: Map<string, Track>;
  inflightRestore: { id: string; from: string; content: Buffer } | null;
  inflightDelete: string | null;
}

function paint(target: Buffer, io: IoOp): void {
  if (io.key === null) target.fill(0, io.offset, io.offset + io.length);
  else fillPattern(io.key, io.offset, io.length).copy(target, io.offset);
}

function newTrack(id: string, from: string, content: Buffer): Track {
  return { id, from, base: content, exact: null, ops: [] };
}

/** Applies an acknowledged op to a track's exact content. */
function apply(track: Track, io: IoOp): void {
  track.exact ??= Buffer.from(track.base);
  paint(track.exact, io);
}

/** A track's exact content: its base when nothing was acknowledged. */
function exactOf(track: Track): Buffer {
  return track.exact ?? track.base;
}

/** Replays a journal over the model: what must exist afterwards, what each image must hold, and what was in flight. */
function replay(model: Model, journal: Journal): Expectation {
  const exp: Expectation = {
    source: newTrack(SOURCE, "", model.source),
    exported: new Map(),
    waited: new Set(),
    inflightExport: null,
    tracks: new Map([...model.restored].map(([id, r]) => [id, newTrack(id, r.from, r.content)])),
    inflightRestore: null,
    inflightDelete: null,
  };
  const contentOf = (name: string): Buffer => {
    const content = exp.exported.get(name) ?? model.members.get(name)?.content;
    if (content === undefined) throw new Error(`the journal restores unknown disk snapshot ${name}`);
    return content;
  };
  // A returned flush makes every write acknowledged before it durable, so only the last one matters.
  const lastFlush = Math.max(-1, ...journal.entries.filter((e) => e.done && e.op.kind === "flush").map((e) => e.seq));
  for (const { seq, op, done } of journal.entries) {
    switch (op.kind) {
      case "writeSource": {
        // Source writes are FUA: durable once acknowledged.
        const io = { seq, offset: op.offset, length: op.length, key: op.key, durable: done };
        exp.source.ops.push(io);
        if (done) apply(exp.source, io);
        break;
      }
      case "export":
        if (done) exp.exported.set(op.name, Buffer.from(exactOf(exp.source)));
        else exp.inflightExport = { name: op.name, content: Buffer.from(exactOf(exp.source)) };
        break;
      case "waitExport":
        if (done) exp.waited.add(op.name);
        break;
      case "restore": {
        const member = contentOf(op.from);
        // Same size as the member (the worker restores at the source's size): share its bytes, which never change.
        const content = member.length === op.sizeBytes ? member : Buffer.concat([member, Buffer.alloc(op.sizeBytes - member.length)]);
        if (done) exp.tracks.set(op.id, newTrack(op.id, op.from, content));
        else exp.inflightRestore = { id: op.id, from: op.from, content };
        break;
      }
      case "write":
      case "zero": {
        const track = exp.tracks.get(op.id);
        if (track === undefined) throw new Error(`the journal writes to unknown volume ${op.id}`);
        const io = { seq, offset: op.offset, length: op.length, key: op.kind === "write" ? op.key : null, durable: done && (op.fua || seq < lastFlush) };
        track.ops.push(io);
        if (done) apply(track, io);
        break;
      }
      case "flush":
        break;
      case "deleteRestored":
        if (done) exp.tracks.delete(op.id);
        else exp.inflightDelete = op.id;
        break;
    }
  }
  return exp;
}

/** Each byte must hold its last durable value, or the value of a later (not durable, or in-flight) op covering it. */
function checkVolume(track: Track, actual: Buffer, faults: string[]): void {
  const size = track.base.length;
  if (actual.length !== size) {
    faults.push(`volume ${track.id} read ${actual.length} bytes, expected ${size}`);
    return;
  }
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
    if (io.durable) return;
    const end = io.offset + io.length;
    const values = io.key === null ? Buffer.alloc(io.length) : fillPattern(io.key, io.offset, io.length);
    for (let b = io.offset; b < end; b++) {
      if (actual[b] !== durable[b] && actual[b] === values[b - io.offset] && (lastDurable[b] ?? -1) < k) justified[b] = 1;
    }
  });
  const bad = (b: number): boolean => actual[b] !== durable[b] && justified[b] !== 1;
  let reported = 0;
  for (let b = 0; b < size && reported < 3; b++) {
    if (!bad(b)) continue;
    let end = b + 1;
    for (let gap = 0; end < size && gap < 16; end++) gap = bad(end) ? 0 : gap + 1;
    while (!bad(end - 1)) end--;
    const owner = track.ops[lastDurable[b] ?? -1];
    const from = track.from === "" ? "" : ` (restored from ${track.from})`;
    faults.push(
      `volume ${track.id}${from} bytes [${b}, ${end}) read ${actual.subarray(b, Math.min(end, b + 4)).toString("hex")}… but the durable value is ` +
        `${durable.subarray(b, Math.min(end, b + 4)).toString("hex")}… (${owner === undefined ? "from before this cycle" : `written by durable op ${owner.seq}`}) and no later op wrote that`,
    );
    reported++;
    b = end;
  }
}

function sameIds(what: string, actual: Iterable<string>, expected: Iterable<string>, faults: string[]): void {
  const a = new Set(actual);
  const e = new Set(expected);
  for (const id of e) if (!a.has(id)) faults.push(`${what} ${id} was acknowledged but is missing after the crash`);
  for (const id of a) if (!e.has(id)) faults.push(`${what} ${id} exists but was never acknowledged nor in flight`);
}

/** Objects of one member in the store directory, by file name. */
function memberFiles(dataDir: string, info: DiskSnapshotInfo): string[] {
  const dir = path.join(dataDir, "durable-store", "families", info.sourceUniqueId, info.memberId);
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/**
 * A manifest is the moment a member exists in the store. Whatever manifest is there must describe a whole member:
 * every segment it lists is in the store with one chunk per listed chunk. (A manifest of a member whose row still says
 * "exporting" can appear when the kill lands between the manifest's put and the row update; it is whole, and the
 * resumed export writes the same one again.)
 */
function checkManifests(dataDir: string, info: DiskSnapshotInfo, faults: string[]): void {
  const manifests = memberFiles(dataDir, info).filter((f) => f.startsWith("manifest-") && f.endsWith(".json"));
  if (info.completionPercent === 100 && manifests.length === 0) faults.push(`disk snapshot ${info.name} is ready but the store has no manifest for it`);
  for (const file of manifests) {
    const dir = path.join(dataDir, "durable-store", "families", info.sourceUniqueId, info.memberId);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as { segments: { key: string; runs: [number, number][] }[] };
    for (const segment of manifest.segments) {
      const object = path.join(dataDir, "durable-store", segment.key);
      const chunks = segment.runs.reduce((sum, [, count]) => sum + count, 0);
      const size = fs.existsSync(object) ? fs.statSync(object).size : -1;
      if (size !== chunks * CHUNK) faults.push(`manifest ${file} of ${info.name} (${info.completionPercent}%) lists ${segment.key} with ${chunks} chunks, but the store holds ${size} bytes for it`);
    }
  }
}

/**
 * Segment objects an unfinished export has recorded as done, with their inodes. A resumed export may not write them
 * again (the store writes an object by rename, so a rewrite shows as a new inode): it continues, never starts over.
 * Reads the SAN's metadata directly, as no API lists an export's segments.
 */
function recordedSegments(dataDir: string): Map<string, { name: string; inode: number }> {
  const db = new DatabaseSync(path.join(dataDir, "meta.sqlite"), { readOnly: true });
  try {
    const rows = db
      .prepare("SELECT s.name AS name, s.object_key AS key FROM disk_snapshot_segments s JOIN disk_snapshots d ON d.name = s.name WHERE d.state = 'exporting' AND s.object_key IS NOT NULL")
      .all() as unknown as { name: string; key: string }[];
    const segments = new Map<string, { name: string; inode: number }>();
    for (const { name, key } of rows) {
      const file = path.join(dataDir, "durable-store", key);
      segments.set(key, { name, inode: fs.existsSync(file) ? fs.statSync(file).ino : -1 });
    }
    return segments;
  } finally {
    db.close();
  }
}

/** Pins (internal images holding a state for the durable tier) that no disk snapshot refers to, for a leak report. */
function unreferencedPins(dataDir: string): string[] {
  const db = new DatabaseSync(path.join(dataDir, "meta.sqlite"), { readOnly: true });
  try {
    const pins = db.prepare("SELECT id FROM images WHERE kind = 'pin'").all() as unknown as { id: string }[];
    const refs = db.prepare("SELECT pin_id, base_pin_id FROM disk_snapshots").all() as unknown as { pin_id: string | null; base_pin_id: string | null }[];
    const referenced = new Set(refs.flatMap((r) => [r.pin_id, r.base_pin_id]));
    return pins.map((p) => p.id).filter((id) => !referenced.has(id));
  } finally {
    db.close();
  }
}

function restoredVolumeIds(san: San): string[] {
  return san.listVolumes({ volumeGroup: VG }).entries.map((v) => v.id).filter((id) => id !== SOURCE);
}

/** Resolves once the worker journaled that its SAN is open; throws with what the worker said if it ended first. */
async function waitForOpen(journalPath: string, exitStatus: () => string | null, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!journalHas(journalPath, '"t":"open"')) {
    const status = exitStatus();
    if (status !== null) throw new Error(`the worker ended (${status}) before opening the SAN: ${readJournal(journalPath).error ?? stderr()}`);
    if (Date.now() > deadline) throw new Error(`the worker did not open the SAN within 20 s: ${stderr()}`);
    await sleep(5);
  }
}

/** True once the journal shows a line containing `needle`. */
function journalHas(journalPath: string, needle: string): boolean {
  return fs.existsSync(journalPath) && fs.readFileSync(journalPath, "utf8").includes(needle);
}

/**
 * Runs one worker and SIGKILLs it: sometimes while it opens the SAN and resumes jobs, often shortly after it starts an
 * export or a restore (so the kill lands inside the background copy), otherwise at a random moment of its work.
 */
async function runAndKill(config: WorkerConfig, rng: () => number): Promise<void> {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(config)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? `code ${code}`));
    child.once("error", (err) => resolve(`spawn error ${err.message}`));
  });
  const exitStatus = (): string | null =>
    child.pid === undefined ? "not started" : child.exitCode !== null ? `code ${child.exitCode}` : child.signalCode !== null ? child.signalCode : null;
  try {
    const r = rng();
    if (r < 0.1) {
      await sleep(200 + rng() * 500);
    } else {
      await waitForOpen(config.journalPath, exitStatus, () => stderr);
      if (r < 0.55) {
        const needle = config.mode === "restoreChurn" ? '"kind":"restore"' : '"kind":"export"';
        const deadline = Date.now() + 1500;
        while (!journalHas(config.journalPath, needle) && Date.now() < deadline && exitStatus() === null) await sleep(2);
        await sleep(rng() * 150);
      } else {
        await sleep(rng() < 0.7 ? 5 + rng() * 200 : 200 + rng() * 600);
      }
    }
  } finally {
    child.kill("SIGKILL");
  }
  const how = await exited;
  if (how !== "SIGKILL") {
    const journal = readJournal(config.journalPath);
    throw new Error(`the worker ended by itself (${how}) before the kill: ${journal.error ?? stderr}`);
  }
}

/** Creates the SAN: one source volume holding INITIAL_DATA_BYTES of data. */
function createSan(dataDir: string): Model {
  const san = San.create(dataDir, {
    capacityBytes: 4096 * MIB,
    chunkSizeBytes: CHUNK,
    limits: { snapshotRateCount: 100_000, maxSnapshotsPerVolume: 100_000, maxDiskSnapshotsPerSource: 100_000 },
  });
  san.createVolumeGroup(VG);
  san.createVolumeGroup(CHECK_VG);
  san.createVolume({ volumeGroup: VG, name: "src", sizeBytes: SOURCE_BYTES });
  const source = Buffer.alloc(SOURCE_BYTES);
  const key = fmix32(0x5eed);
  for (let offset = 0; offset < INITIAL_DATA_BYTES; offset += 4 * MIB) {
    const data = fillPattern(key, offset, 4 * MIB);
    san.write(SOURCE, offset, data);
    data.copy(source, offset);
  }
  san.close();
  return { source, members: new Map(), restored: new Map() };
}

/** Restores a member into a scratch volume and compares it: read through the store at once, and sometimes hydrated. */
async function verifyMember(san: San, name: string, member: Member, hydrate: boolean, scratch: string, faults: string[]): Promise<void> {
  const id = `${CHECK_VG}/${scratch}`;
  san.createVolume({ volumeGroup: CHECK_VG, name: scratch, sizeBytes: member.content.length, source: { kind: "diskSnapshot", id: name } });
  try {
    const read = await san.readAsync(id, 0, member.content.length);
    if (!read.equals(member.content)) faults.push(`disk snapshot ${name} restores (read through) to other bytes than its source held, first at byte ${firstDiff(read, member.content)}`);
    if (hydrate) {
      await san.waitForHydration(id);
      const hydrated = san.read(id, 0, member.content.length);
      if (!hydrated.equals(member.content)) faults.push(`disk snapshot ${name} hydrates to other bytes than its source held, first at byte ${firstDiff(hydrated, member.content)}`);
    }
  } finally {
    san.deleteVolume(id);
  }
}

function firstDiff(a: Buffer, b: Buffer): number {
  return a.findIndex((byte, i) => byte !== b[i]);
}

/** What the kills hit, for the summary line: a crash test that never lands inside a job proves little. */
interface Coverage {
  duringExport: number;
  duringHydration: number;
  resumedSegments: number;
  inflight: Map<string, number>;
}

/** Resumes everything after a kill and checks it; returns the model the next worker starts from. */
async function verifyCycle(dataDir: string, model: Model, journal: Journal, settle: boolean, cycle: number, coverage: Coverage, context: string): Promise<Model> {
  const exp = replay(model, journal);
  const faults: string[] = [];
  const san = San.open(dataDir);
  try {
    // Before anything yields, the resumed jobs have not moved: what is persisted is what the kill left.
    const report = san.check();
    expect(report.faults, `check() after the kill, ${context}`).toEqual([]);
    const infos = san.listDiskSnapshots();
    const listed = new Set(infos.map((d) => d.name));
    const members = new Map(model.members);
    for (const [name, content] of exp.exported) members.set(name, { content, percent: 0, verified: false });
    if (exp.inflightExport !== null && listed.has(exp.inflightExport.name)) members.set(exp.inflightExport.name, { content: exp.inflightExport.content, percent: 0, verified: false });
    sameIds("disk snapshot", listed, members.keys(), faults);
    for (const info of infos) {
      const member = members.get(info.name);
      if (member === undefined) continue;
      const floor = Math.max(member.percent, journal.progress.get(info.name) ?? 0, exp.waited.has(info.name) ? 100 : 0);
      if (info.completionPercent < floor) faults.push(`disk snapshot ${info.name} is at ${info.completionPercent}% after the kill, but ${floor}% had been persisted: its export went backwards`);
      member.percent = Math.max(member.percent, info.completionPercent);
      checkManifests(dataDir, info, faults);
    }
    const segments = recordedSegments(dataDir);
    if (infos.some((d) => d.completionPercent < 100)) coverage.duringExport++;
    coverage.resumedSegments += segments.size;

    const tracks = exp.tracks;
    const ids = restoredVolumeIds(san);
    if (exp.inflightRestore !== null && ids.includes(exp.inflightRestore.id)) {
      const { id, from, content } = exp.inflightRestore;
      tracks.set(id, newTrack(id, from, content));
    }
    if (exp.inflightDelete !== null && !ids.includes(exp.inflightDelete)) tracks.delete(exp.inflightDelete);
    sameIds("restored volume", ids, tracks.keys(), faults);
    if (ids.some((id) => san.getVolume(id).hydration?.state === "hydrating")) coverage.duringHydration++;
    for (const [id, track] of tracks) {
      if (!ids.includes(id)) continue;
      const status = san.getVolume(id).hydration;
      const seen = journal.hydration.get(id);
      const previous = model.restored.get(id);
      const floor = Math.max(seen?.percent ?? 0, previous?.percent ?? 0);
      if (status === null) {
        faults.push(`volume ${id} was restored from ${track.from} but reopens with no hydration: it reads as an empty volume`);
      } else {
        if (status.diskSnapshot !== track.from) faults.push(`volume ${id} hydrates from ${status.diskSnapshot}, expected ${track.from}`);
        if (status.completionPercent < floor) faults.push(`volume ${id} is ${status.completionPercent}% hydrated after the kill, but ${floor}% had been persisted`);
        if ((seen?.complete === true || previous?.complete === true) && status.state !== "complete") faults.push(`volume ${id} had completed hydration but reopens ${status.state}`);
      }
    }
    expect(faults, `after the kill, ${context}`).toEqual([]);

    // Restored volumes read right at once (through the store where not yet hydrated), with every flushed write.
    const actual = new Map<string, Buffer>();
    for (const [id, track] of tracks) {
      const bytes = await san.readAsync(id, 0, track.base.length);
      checkVolume(track, bytes, faults);
      actual.set(id, bytes);
    }
    const source = san.read(SOURCE, 0, SOURCE_BYTES);
    checkVolume(exp.source, source, faults);
    expect(faults, `reads after the kill, ${context}`).toEqual([]);

    if (settle) {
      for (const info of infos) {
        if (info.completionPercent === 100) continue;
        const done = await san.waitForDiskSnapshot(info.name);
        expect(done.completionPercent, `${info.name} after waitForDiskSnapshot, ${context}`).toBe(100);
        members.get(info.name)!.percent = 100;
      }
      for (const [key, { name, inode }] of segments) {
        const file = path.join(dataDir, "durable-store", key);
        const now = fs.existsSync(file) ? fs.statSync(file).ino : -1;
        if (now !== inode) faults.push(`segment ${key} of ${name} was recorded as done before the kill, yet the resumed export wrote it again: it started over`);
      }
      for (const info of san.listDiskSnapshots()) checkManifests(dataDir, info, faults);
      for (const [id, bytes] of actual) {
        await san.waitForHydration(id);
        const status = san.getVolume(id).hydration;
        if (status?.state !== "complete" || status.completionPercent !== 100) faults.push(`volume ${id} ends its hydration ${JSON.stringify(status)}`);
        else if (!san.read(id, 0, bytes.length).equals(bytes)) faults.push(`volume ${id} reads other bytes after hydration than through the store before it`);
      }
      let scratch = 0;
      for (const [name, member] of members) {
        if (member.percent !== 100 || member.verified) continue;
        await verifyMember(san, name, member, scratch % 4 === 0, `k${cycle}x${scratch++}`, faults);
        member.verified = true;
      }
      expect(faults, `after resuming, ${context}`).toEqual([]);
      // Room for the next cycles: hydrated volumes go, and the oldest members fold into their successors.
      for (const id of actual.keys()) san.deleteVolume(id);
      actual.clear();
      const ready = san.listDiskSnapshots().filter((d) => d.completionPercent === 100);
      for (const [index, old] of ready.slice(0, Math.max(0, ready.length - KEEP_READY)).entries()) {
        await san.deleteDiskSnapshot(old.name);
        members.delete(old.name);
        const successor = ready[index + 1];
        if (successor !== undefined) members.get(successor.name)!.verified = false;
      }
    } else {
      for (const info of san.listDiskSnapshots()) {
        const member = members.get(info.name);
        if (member !== undefined) member.percent = Math.max(member.percent, info.completionPercent);
      }
    }

    const restored = new Map<string, Restored>();
    for (const [id, bytes] of actual) {
      const status = san.getVolume(id).hydration;
      restored.set(id, { content: bytes, from: tracks.get(id)!.from, percent: status?.completionPercent ?? 0, complete: status?.state === "complete" });
    }
    const after = san.check();
    expect(after.faults, `check() after resuming, ${context}`).toEqual([]);
    san.close();
    // A pin holds a state for an export or as the family's next base; one that no disk snapshot names holds its
    // chunks forever. (check() counts a pin as an image, so it cannot see this; the SAN's metadata can.)
    expect(unreferencedPins(dataDir), `pins no disk snapshot refers to, ${context}`).toEqual([]);
    return { source, members, restored };
  } finally {
    san.close();
  }
}

/** The end: every job finishes, every member restores right, and deleting everything frees every chunk. */
async function finalCheck(dataDir: string, model: Model, context: string): Promise<void> {
  const san = San.open(dataDir);
  try {
    const faults: string[] = [];
    for (const info of san.listDiskSnapshots()) expect((await san.waitForDiskSnapshot(info.name)).completionPercent, context).toBe(100);
    for (const [id, restored] of model.restored) {
      await san.waitForHydration(id);
      if (!san.read(id, 0, restored.content.length).equals(restored.content)) faults.push(`volume ${id} ends with other bytes than it read before hydration finished`);
      san.deleteVolume(id);
    }
    let scratch = 0;
    for (const [name, member] of model.members) {
      if (!member.verified) await verifyMember(san, name, member, true, `final${scratch++}`, faults);
    }
    expect(faults, `end of test, ${context}`).toEqual([]);
    for (const info of san.listDiskSnapshots()) await san.deleteDiskSnapshot(info.name);
    san.deleteVolume(SOURCE);
    expect(san.check().faults, context).toEqual([]);
    const leakedPins = san.info().physicalBytes === 0 ? [] : unreferencedPins(dataDir);
    expect({ physicalBytes: san.info().physicalBytes, leakedPins }, `with every volume and disk snapshot deleted, no chunk stays held, ${context}`).toEqual({ physicalBytes: 0, leakedPins: [] });
    // Temporary files of the killed writers included: the store discards them when it is opened.
    const left = fs.readdirSync(path.join(dataDir, "durable-store"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(left.map((e) => path.join(e.parentPath, e.name)), `the store keeps no object of a deleted disk snapshot and no temporary file, ${context}`).toEqual([]);
  } finally {
    san.close();
  }
}

describe("durable tier under SIGKILL", () => {
  it("exports resume to the exact source bytes and hydrating volumes keep their flushed writes, kill after kill", async () => {
    const rng = mulberry32(SEED);
    const root = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "esan-durable-crash-"));
    const dataDir = path.join(root, "san");
    let model = createSan(dataDir);
    const started = Date.now();
    let seqStart = 0;
    let cycles = 0;
    let ops = 0;
    const coverage: Coverage = { duringExport: 0, duringHydration: 0, resumedSegments: 0, inflight: new Map() };
    console.log(`durable crash test: seed ${SEED} (rerun with ESAN_DURABLE_CRASH_SEED=${SEED})`);
    for (; cycles < MAX_CYCLES && Date.now() - started < BUDGET_MS; cycles++) {
      const journalPath = path.join(root, `journal-${cycles}.jsonl`);
      const ready = [...model.members].filter(([, m]) => m.percent === 100).map(([name]) => name);
      const r = rng();
      const mode: WorkerConfig["mode"] = r < 0.3 && ready.length > 0 ? "restoreChurn" : r < 0.55 ? "exportChurn" : "mixed";
      const config: WorkerConfig = {
        dataDir,
        journalPath,
        seed: fmix32(SEED ^ fmix32(cycles)),
        seqStart,
        volumeGroup: VG,
        sourceId: SOURCE,
        sourceSizeBytes: SOURCE_BYTES,
        ready,
        exporting: [...model.members].filter(([, m]) => m.percent < 100).map(([name]) => name),
        restored: [...model.restored.keys()],
        storeLatencyMs: rng() < 0.5 ? 0 : Math.floor(2 + rng() * 7),
        mode,
        maxExports: mode === "exportChurn" ? 6 : 2,
      };
      const context = `seed ${SEED} (ESAN_DURABLE_CRASH_SEED=${SEED}), cycle ${cycles}, ${mode}, data in ${root}`;
      await runAndKill(config, rng);
      const journal = readJournal(journalPath);
      // Most cycles wait for every job; the others leave exports and hydrations for the next worker to resume.
      const settle = rng() < 0.8;
      const last = journal.entries.at(-1);
      const inflight = last === undefined ? "nothing" : last.done ? "between ops" : last.op.kind;
      coverage.inflight.set(inflight, (coverage.inflight.get(inflight) ?? 0) + 1);
      model = await verifyCycle(dataDir, model, journal, settle, cycles, coverage, `${context}, ${journal.entries.length} ops, in flight: ${JSON.stringify(journal.entries.at(-1))}`);
      seqStart = (journal.entries.at(-1)?.seq ?? seqStart - 1) + 1;
      ops += journal.entries.length;
    }
    const context = `seed ${SEED} (ESAN_DURABLE_CRASH_SEED=${SEED}), after ${cycles} cycles, data in ${root}`;
    console.log(
      `durable crash test: ${cycles} kills, ${ops} ops; reopened with an export unfinished ${coverage.duringExport} times ` +
        `(${coverage.resumedSegments} recorded segments checked for rewrite), with a volume hydrating ${coverage.duringHydration} times; ` +
        `in flight at the kill: ${JSON.stringify(Object.fromEntries(coverage.inflight))}`,
    );
    await finalCheck(dataDir, model, context);
    expect(cycles, context).toBeGreaterThanOrEqual(MIN_CYCLES);
    expect(ops, `the workers should get real work done between kills, ${context}`).toBeGreaterThan(cycles);
    fs.rmSync(root, { recursive: true, force: true });
  }, 150_000);
});
