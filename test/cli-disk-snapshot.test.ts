// End-to-end tests of `esan disk-snapshot` (and restoring with `volume create --source disk-snapshot:NAME`): each run
// spawns bin/esan against data directories in a temp dir, as a user would.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ESAN = resolve(import.meta.dirname, "..", "bin", "esan");
const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs bin/esan with `args` (no ESAN_* from our environment) and resolves whatever the exit status. */
function run(args: readonly string[], input: Buffer | string = ""): Promise<Run> {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("ESAN_")) delete env[key];
  return new Promise((done, reject) => {
    const child = execFile(ESAN, args, { encoding: "buffer", maxBuffer: 64 * MiB, env }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") {
        reject(new Error(`esan ${args.join(" ")} did not run: ${error.message}`));
        return;
      }
      done({ code: error ? Number(error.code) : 0, stdout, stderr: stderr.toString("utf8") });
    });
    child.stdin?.end(input);
  });
}

/** Asserts a failed run printed `CODE: sentence` on stderr and returns the sentence. */
function expectError(result: Run, code: string): string {
  expect(result.code, result.stdout.toString()).toBe(1);
  const match = /^([A-Za-z]+): (.+)\n$/s.exec(result.stderr);
  expect(match?.[1], result.stderr).toBe(code);
  return match?.[2] ?? "";
}

interface DiskSnapshotJson {
  name: string;
  sourceResourceId: string;
  sourceUniqueId: string;
  incremental: boolean;
  sizeBytes: number;
  usedBytes: number;
  sectorSize: number;
  completionPercent: number;
  createdAt: string;
}

describe("esan disk-snapshot", () => {
  let root = "";
  let dataDir = "";
  let otherDir = "";
  /** Runs esan against the main SAN. */
  const esan = (args: readonly string[], input?: Buffer) => run([...args, "--data-dir", dataDir], input);
  /** Runs esan --json against `dir`, expects success, parses stdout. */
  const jsonIn = async <T = Record<string, unknown>>(dir: string, args: readonly string[], input?: Buffer): Promise<T> => {
    const result = await run([...args, "--data-dir", dir, "--json"], input);
    expect(result.code, `esan ${args.join(" ")} failed: ${result.stderr}${result.stdout.toString()}`).toBe(0);
    return JSON.parse(result.stdout.toString("utf8")) as T;
  };
  const json = <T = Record<string, unknown>>(args: readonly string[], input?: Buffer) => jsonIn<T>(dataDir, args, input);

  // The volume's content when d1 was exported (1 MiB volume: 192 KiB at 0, 64 KiB at 512 KiB), and after the overwrite.
  const image = Buffer.alloc(MiB);
  let d1Image = Buffer.alloc(0);
  let family = "";

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "esan-cli-ds-"));
    dataDir = join(root, "san");
    otherDir = join(root, "other");
    for (const dir of [dataDir, otherDir]) await jsonIn(dir, ["san", "create", "--capacity", "256MiB", "--chunk-size", "64KiB"]);
    await json(["volume-group", "create", "vg1"]);
    await json(["volume", "create", "vg1/v1", "--size", "1MiB"]);
    const first = randomBytes(3 * CHUNK);
    const second = randomBytes(CHUNK);
    first.copy(image, 0);
    second.copy(image, 8 * CHUNK);
    await json(["volume", "write", "vg1/v1", "--offset", "0"], first);
    await json(["volume", "write", "vg1/v1", "--offset", String(8 * CHUNK)], second);
    d1Image = Buffer.from(image);
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it("exports a volume in full with --wait, then shows it complete", async () => {
    const result = await esan(["disk-snapshot", "export", "d1", "--source", "vg1/v1", "--wait", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    // Not a terminal: progress comes as lines on stderr, ending at 100%.
    expect(result.stderr).toMatch(/export d1: 100%\n$/);
    const exported = JSON.parse(result.stdout.toString()) as DiskSnapshotJson;
    expect(exported.completionPercent).toBe(100);

    const volume = await json<{ allocatedBytes: number; uniqueId: string }>(["volume", "show", "vg1/v1"]);
    const shown = await json<DiskSnapshotJson>(["disk-snapshot", "show", "d1"]);
    expect(shown).toMatchObject({
      name: "d1",
      sourceResourceId: "vg1/v1",
      sourceUniqueId: volume.uniqueId,
      incremental: false,
      sizeBytes: MiB,
      usedBytes: volume.allocatedBytes,
      sectorSize: 512,
      completionPercent: 100,
    });
    expect(volume.allocatedBytes).toBe(4 * CHUNK);
    expect(typeof shown.createdAt).toBe("string");
    family = shown.sourceUniqueId;

    const human = await esan(["disk-snapshot", "show", "d1"]);
    expect(human.stdout.toString()).toMatch(/incremental:\s+no \(full\)/);
    expect(human.stdout.toString()).toMatch(/completion:\s+100%/);
  });

  it("exports a later instant snapshot incrementally: only the changed chunk", async () => {
    const changed = randomBytes(CHUNK);
    changed.copy(image, 2 * CHUNK);
    await json(["volume", "write", "vg1/v1", "--offset", String(2 * CHUNK)], changed);
    await json(["snapshot", "create", "vg1/s1", "--source", "vg1/v1"]);
    const exported = await json<DiskSnapshotJson>(["disk-snapshot", "export", "d2", "--source", "vg1/s1", "--wait"]);
    expect(exported).toMatchObject({ name: "d2", sourceUniqueId: family, incremental: true, usedBytes: CHUNK, completionPercent: 100 });
  });

  it("lists disk snapshots, all or by source, oldest first", async () => {
    const all = await json<DiskSnapshotJson[]>(["disk-snapshot", "list"]);
    expect(all.map((s) => s.name)).toEqual(["d1", "d2"]);
    const bySource = await json<DiskSnapshotJson[]>(["disk-snapshot", "list", "--source", "vg1/v1"]);
    expect(bySource.map((s) => s.name)).toEqual(["d1", "d2"]);
    const human = await esan(["disk-snapshot", "list"]);
    expect(human.stdout.toString()).toMatch(/^NAME\s+SOURCE/);
    expect(human.stdout.toString()).toMatch(/\nd2\s+vg1\/v1\s+vg1\/s1\s+yes/);
  });

  it("diffs two members with the snapshot diff JSON shape", async () => {
    const diff = await json(["disk-snapshot", "diff", "d1", "d2"]);
    expect(Object.keys(diff).sort()).toEqual(["changedBytes", "chunkSize", "ranges"]);
    expect(diff).toEqual({ chunkSize: CHUNK, changedBytes: CHUNK, ranges: [{ offset: 2 * CHUNK, length: CHUNK }] });
  });

  it("returns at once without --wait; the same export with --wait later completes it", async () => {
    const started = await json<DiskSnapshotJson>(["disk-snapshot", "export", "d3", "--source", "vg1/v1"]);
    expect(started.name).toBe("d3");
    expect(started.completionPercent).toBeLessThanOrEqual(100);
    const finished = await json<DiskSnapshotJson>(["disk-snapshot", "export", "d3", "--source", "vg1/v1", "--wait"]);
    expect(finished).toMatchObject({ name: "d3", completionPercent: 100, incremental: true, usedBytes: 0 });
  });

  it("restores a volume from a disk snapshot that reads back the exported data, and shows its hydration", async () => {
    const created = await json<{ hydration: { state: string; completionPercent: number; diskSnapshot: string } | null }>([
      "volume",
      "create",
      "vg1/r1",
      "--size",
      "1MiB",
      "--source",
      "disk-snapshot:d1",
    ]);
    expect(created.hydration).toMatchObject({ diskSnapshot: "d1" });
    const read = await esan(["volume", "read", "vg1/r1"]);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout.equals(d1Image)).toBe(true);

    const human = await esan(["volume", "show", "vg1/r1"]);
    expect(human.stdout.toString()).toMatch(/hydration:\s+(hydrating|complete) \d+% from disk snapshot d1/);
    const plain = await esan(["volume", "show", "vg1/v1"]);
    expect(plain.stdout.toString()).not.toMatch(/hydration:/);
  });

  it("copies a family to another SAN, then a second copy moves nothing", async () => {
    const first = await json<{ membersCopied: string[]; bytesMoved: number }>(["disk-snapshot", "copy", "--family", family, "--to-data-dir", otherDir]);
    expect(first.membersCopied.length).toBe(3);
    expect(first.bytesMoved).toBeGreaterThanOrEqual(5 * CHUNK);
    const second = await json<{ membersCopied: string[]; bytesMoved: number }>(["disk-snapshot", "copy", "--family", family, "--to-data-dir", otherDir, "--wait"]);
    expect(second).toMatchObject({ membersCopied: [], bytesMoved: 0 });
    const copied = await jsonIn<DiskSnapshotJson[]>(otherDir, ["disk-snapshot", "list"]);
    expect(copied.map((s) => s.name).sort()).toEqual(["d1", "d2", "d3"]);
    expect(copied.every((s) => s.sourceUniqueId === family && s.completionPercent === 100)).toBe(true);
  });

  it("deletes a disk snapshot; the rest of its family stays", async () => {
    const deleted = await json(["disk-snapshot", "delete", "d2"]);
    expect(deleted).toEqual({ name: "d2", deleted: true });
    expectError(await esan(["disk-snapshot", "show", "d2"]), "NotFound");
    const left = await json<DiskSnapshotJson[]>(["disk-snapshot", "list"]);
    expect(left.map((s) => s.name)).toEqual(["d1", "d3"]);
  });

  it("refuses bad sources, names and copy over --san with CODE: sentence", async () => {
    expectError(await esan(["disk-snapshot", "export", "dx", "--source", "vg1/nope"]), "NotFound");
    expect(expectError(await esan(["disk-snapshot", "export", "dx", "--source", "nope"]), "InvalidArgument")).toContain("VOLUME-GROUP/NAME");
    expectError(await esan(["volume", "create", "vg1/r2", "--size", "1MiB", "--source", "disk-snapshot:nope"]), "NotFound");
    expect(expectError(await esan(["volume", "create", "vg1/r2", "--size", "1MiB", "--source", "disk-snapshot:"]), "InvalidArgument")).toContain(
      "disk-snapshot:NAME",
    );
    expectError(await esan(["disk-snapshot", "show", "vg1/d1"]), "InvalidArgument");
    const sentence = expectError(
      await run(["disk-snapshot", "copy", "--family", family, "--to-data-dir", otherDir, "--san", `unix://${join(root, "none.sock")}`]),
      "InvalidArgument",
    );
    expect(sentence).toContain("--data-dir");
  });
});
