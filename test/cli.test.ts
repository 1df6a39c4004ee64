// End-to-end tests of the `esan` admin CLI: each test spawns bin/esan against a fresh data directory and checks
// exit codes, JSON and human output, and the bytes that come back.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";

const ESAN = resolve(import.meta.dirname, "..", "bin", "esan");
const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

/** What one CLI run produced. */
interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** The environment the CLI runs in: ours, minus anything that would change its behaviour. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!("ESAN_DATA_DIR" in extra)) delete env.ESAN_DATA_DIR;
  if (!("ESAN_DEBUG" in extra)) delete env.ESAN_DEBUG;
  return env;
}

/** Runs bin/esan with `args`, feeding `input` on stdin (empty by default), and resolves whatever the exit status. */
function run(args: readonly string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = execFile(
      ESAN,
      args,
      { encoding: "buffer", maxBuffer: 256 * MiB, env: options.env ?? cleanEnv() },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          reject(new Error(`esan ${args.join(" ")} did not run: ${error.message}`));
          return;
        }
        resolveRun({ code: error ? Number(error.code) : 0, stdout, stderr: stderr.toString("utf8") });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** A fresh SAN per describe block: its directory and a runner that passes --data-dir. */
function sanFixture(createArgs: readonly string[] = ["--capacity", "1GiB"]) {
  const fixture = {
    root: "",
    dataDir: "",
    /** Runs esan against this SAN. */
    esan: (args: readonly string[], options?: { input?: Buffer | string }) => run([...args, "--data-dir", fixture.dataDir], options),
    /** Runs esan --json against this SAN, expects success, and parses stdout. */
    json: async <T = Record<string, unknown>>(args: readonly string[], options?: { input?: Buffer | string }): Promise<T> => {
      const result = await fixture.esan([...args, "--json"], options);
      expect(result.code, `esan ${args.join(" ")} failed: ${result.stderr}${result.stdout.toString()}`).toBe(0);
      return JSON.parse(result.stdout.toString("utf8")) as T;
    },
  };
  beforeAll(async () => {
    fixture.root = mkdtempSync(join(tmpdir(), "esan-cli-"));
    fixture.dataDir = join(fixture.root, "san");
    const created = await run(["san", "create", ...createArgs, "--data-dir", fixture.dataDir]);
    expect(created.code, created.stderr).toBe(0);
  });
  afterAll(() => {
    rmSync(fixture.root, { recursive: true, force: true });
  });
  return fixture;
}

/** Asserts a failed run printed `CODE: sentence` on stderr and returns the sentence. */
function expectError(result: Run, code: string): string {
  expect(result.code, result.stdout.toString()).toBe(1);
  const match = /^([A-Za-z]+): (.+)\n$/s.exec(result.stderr);
  expect(match?.[1], result.stderr).toBe(code);
  return match?.[2] ?? "";
}

describe("esan san", () => {
  const san = sanFixture(["--capacity", "1GiB", "--chunk-size", "64KiB", "--max-snapshots-per-volume", "10", "--snapshot-rate", "100/1m"]);

  it("creates a SAN with the given capacity, chunk size and limits, and shows it", async () => {
    const info = await san.json(["san", "show"]);
    expect(info).toMatchObject({
      capacityBytes: 1024 * MiB,
      chunkSizeBytes: CHUNK,
      limits: { maxSnapshotsPerVolume: 10, snapshotRateCount: 100, snapshotRateWindowMs: 60_000 },
      provisionedBytes: 0,
      volumeCount: 0,
    });
    const human = await san.esan(["san", "show"]);
    expect(human.code).toBe(0);
    expect(human.stdout.toString()).toMatch(/capacity:\s+1 GiB \(1073741824 bytes\)/);
    expect(human.stdout.toString()).toMatch(/snapshot rate:\s+100 per 1m per volume/);
  });

  it("refuses to create a second SAN in the same directory", async () => {
    expectError(await san.esan(["san", "create", "--capacity", "1GiB"]), "AlreadyExists");
  });

  it("creates with the engine defaults when only --capacity is given, taking the directory from ESAN_DATA_DIR", async () => {
    const dataDir = join(san.root, "defaults");
    const created = await run(["san", "create", "--capacity", "10TiB", "--json"], { env: cleanEnv({ ESAN_DATA_DIR: dataDir }) });
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout.toString())).toMatchObject({
      capacityBytes: 10 * 1024 ** 4,
      chunkSizeBytes: CHUNK,
      limits: { maxSnapshotsPerVolume: 200, snapshotRateCount: 7, snapshotRateWindowMs: 300_000 },
    });
  });

  it("rejects a malformed --snapshot-rate with a sentence", async () => {
    const sentence = expectError(await run(["san", "create", "--capacity", "1GiB", "--snapshot-rate", "7", "--data-dir", join(san.root, "x")]), "InvalidArgument");
    expect(sentence).toContain("COUNT/DURATION");
  });
});

describe("esan snapshot limits", () => {
  const san = sanFixture(["--capacity", "1GiB", "--max-snapshots-per-volume", "1", "--snapshot-rate", "2/1h"]);

  it("refuses snapshots beyond the limits given to san create, naming the volume and the limit", async () => {
    await san.json(["volume-group", "create", "vg1"]);
    await san.json(["volume", "create", "vg1/a", "--size", "1MiB"]);
    await san.json(["snapshot", "create", "vg1/s1", "--source", "vg1/a"]);
    const count = expectError(await san.esan(["snapshot", "create", "vg1/s2", "--source", "vg1/a"]), "SnapshotCountExceeded");
    expect(count).toContain("vg1/a");
    expect(count).toContain("1");

    await san.json(["snapshot", "delete", "vg1/s1"]);
    await san.json(["snapshot", "create", "vg1/s3", "--source", "vg1/a"]);
    await san.json(["snapshot", "delete", "vg1/s3"]);
    const rate = expectError(await san.esan(["snapshot", "create", "vg1/s4", "--source", "vg1/a"]), "SnapshotOperationRateExceeded");
    expect(rate).toContain("vg1/a");
  });
});

describe("esan volume-group and volume", () => {
  const san = sanFixture();

  beforeAll(async () => {
    await san.json(["volume-group", "create", "vg1"]);
  });

  it("lists volume groups", async () => {
    const groups = await san.json<Array<{ name: string }>>(["volume-group", "list"]);
    expect(groups.map((group) => group.name)).toEqual(["vg1"]);
  });

  it("creates a volume idempotently, lists, shows, resizes and deletes it", async () => {
    const created = await san.json(["volume", "create", "vg1/a", "--size", "4MiB"]);
    expect(created).toMatchObject({ id: "vg1/a", sizeBytes: 4 * MiB, sectorSize: 512, creationData: { kind: "none" } });
    const again = await san.json(["volume", "create", "vg1/a", "--size", "4MiB"]);
    expect(again.uniqueId).toBe(created.uniqueId);
    expectError(await san.esan(["volume", "create", "vg1/a", "--size", "8MiB"]), "AlreadyExists");

    await san.json(["volume", "create", "vg1/b", "--size", "1MiB", "--sector-size", "4096"]);
    const listed = await san.json<Array<{ id: string; sectorSize: number }>>(["volume", "list", "--vg", "vg1"]);
    expect(listed.map((volume) => [volume.id, volume.sectorSize])).toEqual([
      ["vg1/a", 512],
      ["vg1/b", 4096],
    ]);
    const table = await san.esan(["volume", "list"]);
    expect(table.stdout.toString()).toMatch(/^ID\s+SIZE\s+SECTOR/);
    expect(table.stdout.toString()).toMatch(/vg1\/a\s+4 MiB\s+512/);

    const shown = await san.esan(["volume", "show", "vg1/a"]);
    expect(shown.code).toBe(0);
    expect(shown.stdout.toString()).toMatch(/size:\s+4 MiB \(4194304 bytes\)/);

    const resized = await san.json(["volume", "resize", "vg1/a", "--size", "8MiB"]);
    expect(resized).toMatchObject({ sizeBytes: 8 * MiB, uniqueId: created.uniqueId });
    expectError(await san.esan(["volume", "resize", "vg1/a", "--size", "1MiB"]), "FailedPrecondition");

    expect(await san.json(["volume", "delete", "vg1/b"])).toEqual({ id: "vg1/b", deleted: true });
    expectError(await san.esan(["volume", "show", "vg1/b"]), "NotFound");
  });

  it("refuses to delete a volume group that still holds volumes", async () => {
    expectError(await san.esan(["volume-group", "delete", "vg1"]), "FailedPrecondition");
  });
});

describe("esan volume write and read", () => {
  const san = sanFixture();
  const model = Buffer.alloc(8 * MiB);

  beforeAll(async () => {
    await san.json(["volume-group", "create", "vg1"]);
    await san.json(["volume", "create", "vg1/data", "--size", "8MiB"]);
  });

  it("writes a file at an offset and reads the range back into a file", async () => {
    const payload = randomBytes(200_000);
    const file = join(san.root, "payload.bin");
    writeFileSync(file, payload);
    const written = await san.json(["volume", "write", "vg1/data", "--offset", "64KiB", "--file", file]);
    expect(written).toEqual({ id: "vg1/data", offset: 64 * KiB, bytesWritten: payload.length });
    payload.copy(model, 64 * KiB);

    const out = join(san.root, "out.bin");
    const read = await san.json(["volume", "read", "vg1/data", "--offset", "65536", "--length", String(payload.length), "--file", out]);
    expect(read).toMatchObject({ id: "vg1/data", offset: 64 * KiB, bytesRead: payload.length });
    expect(readFileSync(out).equals(payload)).toBe(true);
  });

  it("writes stdin of more than one 1 MiB piece and reads the whole volume to stdout", async () => {
    const payload = randomBytes(2 * MiB + 12_345);
    const written = await san.esan(["volume", "write", "vg1/data", "--offset", "3MiB"], { input: payload });
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout.toString()).toContain(`wrote ${payload.length} bytes`);
    payload.copy(model, 3 * MiB);

    const read = await san.esan(["volume", "read", "vg1/data"]);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout.length).toBe(model.length);
    expect(read.stdout.equals(model)).toBe(true);
  });

  it("refuses a write past the end of the volume with OutOfRange", async () => {
    expectError(await san.esan(["volume", "write", "vg1/data", "--offset", "8MiB"], { input: "x" }), "OutOfRange");
    expectError(await san.esan(["volume", "read", "vg1/data", "--offset", "9MiB"]), "OutOfRange");
  });
});

describe("esan snapshot, clone, group-snapshot and check", () => {
  const san = sanFixture();
  const original = randomBytes(1 * MiB);
  const overwrite = randomBytes(100_000);
  const overwriteAt = 128 * KiB;

  beforeAll(async () => {
    await san.json(["volume-group", "create", "vg1"]);
    await san.json(["volume", "create", "vg1/a", "--size", "2MiB"]);
    await san.json(["volume", "write", "vg1/a", "--offset", "0"], { input: original });
  });

  it("creates, lists, shows and reads a snapshot that keeps the data written before it", async () => {
    const snapshot = await san.json(["snapshot", "create", "vg1/s1", "--source", "vg1/a"]);
    expect(snapshot).toMatchObject({ id: "vg1/s1", sourceId: "vg1/a", sizeBytes: 2 * MiB, usedBytes: 0, readyToUse: true });

    const written = await san.esan(["volume", "write", "vg1/a", "--offset", String(overwriteAt)], { input: overwrite });
    expect(written.code, written.stderr).toBe(0);

    const listed = await san.json<Array<{ id: string }>>(["snapshot", "list", "--source", "vg1/a"]);
    expect(listed.map((entry) => entry.id)).toEqual(["vg1/s1"]);
    const shown = await san.esan(["snapshot", "show", "vg1/s1"]);
    expect(shown.stdout.toString()).toMatch(/source:\s+vg1\/a/);

    const read = await san.esan(["snapshot", "read", "vg1/s1", "--length", "1MiB"]);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout.equals(original)).toBe(true);
    const file = join(san.root, "s1.bin");
    await san.json(["snapshot", "read", "vg1/s1", "--file", file]);
    expect(readFileSync(file).subarray(0, MiB).equals(original)).toBe(true);
  });

  it("diffs a snapshot against the volume: the overwritten bytes rounded out to whole chunks", async () => {
    const expected = { chunkSize: CHUNK, changedBytes: 2 * CHUNK, ranges: [{ offset: overwriteAt, length: 2 * CHUNK }] };
    const diff = await san.json(["snapshot", "diff", "vg1/s1", "vg1/a"]);
    expect(Object.keys(diff).sort()).toEqual(["changedBytes", "chunkSize", "ranges"]);
    expect(diff).toEqual(expected);
    expect(diff.changedBytes).toBe(Math.ceil(overwrite.length / CHUNK) * CHUNK);

    await san.json(["snapshot", "create", "vg1/s2", "--source", "vg1/a"]);
    expect(await san.json(["snapshot", "diff", "vg1/s1", "vg1/s2"])).toEqual(expected);
    const human = await san.esan(["snapshot", "diff", "vg1/s1", "vg1/s2"]);
    expect(human.stdout.toString()).toContain("vg1/s2 differs from vg1/s1 in 128 KiB (131072 bytes) over 1 range(s)");
  });

  it("clones from a snapshot and from a volume, each reading back its source's bytes", async () => {
    const fromSnapshot = await san.json(["volume", "create", "vg1/c1", "--size", "2MiB", "--source", "snapshot:vg1/s1"]);
    expect(fromSnapshot.creationData).toMatchObject({ kind: "snapshot", sourceId: "vg1/s1" });
    const c1 = await san.esan(["volume", "read", "vg1/c1", "--length", "1MiB"]);
    expect(c1.stdout.equals(original)).toBe(true);

    const fromVolume = await san.json(["volume", "create", "vg1/c2", "--size", "4MiB", "--source", "volume:vg1/a"]);
    expect(fromVolume).toMatchObject({ sizeBytes: 4 * MiB, creationData: { kind: "volume", sourceId: "vg1/a" } });
    const source = await san.esan(["volume", "read", "vg1/a"]);
    const clone = await san.esan(["volume", "read", "vg1/c2"]);
    expect(clone.stdout.length).toBe(4 * MiB);
    expect(clone.stdout.subarray(0, 2 * MiB).equals(source.stdout)).toBe(true);
    expect(clone.stdout.subarray(2 * MiB).equals(Buffer.alloc(2 * MiB))).toBe(true);

    expectError(await san.esan(["volume", "create", "vg1/c3", "--size", "1MiB", "--source", "snapshot:vg1/s1"]), "FailedPrecondition");
  });

  it("takes a group snapshot of two volumes in one step", async () => {
    await san.json(["volume", "create", "vg1/b", "--size", "1MiB"]);
    const group = await san.json<{ id: string; snapshotIds: string[]; sourceIds: string[] }>([
      "group-snapshot",
      "create",
      "vg1/g1",
      "--volumes",
      "vg1/a,vg1/b",
    ]);
    expect(group.id).toBe("vg1/g1");
    expect(group.sourceIds).toEqual(["vg1/a", "vg1/b"]);
    expect(group.snapshotIds).toHaveLength(2);
    const member = await san.json(["snapshot", "show", group.snapshotIds[0] ?? ""]);
    expect(member).toMatchObject({ sourceId: "vg1/a", groupSnapshotId: "vg1/g1" });
    const listed = await san.json<Array<{ id: string }>>(["group-snapshot", "list"]);
    expect(listed.map((entry) => entry.id)).toEqual(["vg1/g1"]);
    expect(await san.json(["group-snapshot", "show", "vg1/g1"])).toEqual(group);
  });

  it("passes the consistency check", async () => {
    const report = await san.json(["check"]);
    expect(report).toMatchObject({ ok: true, faults: [] });
    const human = await san.esan(["check"]);
    expect(human.code).toBe(0);
    expect(human.stdout.toString()).toMatch(/^ok: no faults/);
  });
});

describe("esan errors", () => {
  const san = sanFixture();

  beforeAll(async () => {
    await san.json(["volume-group", "create", "vg1"]);
    await san.json(["volume", "create", "vg1/a", "--size", "1MiB"]);
  });

  it.each([
    { name: "a bad name", args: ["volume", "create", "vg1/Bad_Name", "--size", "1MiB"], code: "InvalidArgument" },
    { name: "an unaligned size", args: ["volume", "create", "vg1/odd", "--size", "1000"], code: "InvalidArgument" },
    { name: "an unreadable size", args: ["volume", "create", "vg1/odd", "--size", "1GB"], code: "InvalidArgument" },
    { name: "an id without a volume group", args: ["volume", "show", "lonely"], code: "InvalidArgument" },
    { name: "an unknown volume", args: ["volume", "show", "vg1/nope"], code: "NotFound" },
    { name: "a --file that does not exist", args: ["volume", "write", "vg1/a", "--file", "/nonexistent/esan-input"], code: "InvalidArgument" },
    { name: "a volume too large for the SAN", args: ["volume", "create", "vg1/huge", "--size", "2GiB"], code: "CapacityExceeded" },
  ])("prints CODE: sentence for $name, and the same as JSON on stdout with --json", async ({ args, code }) => {
    const sentence = expectError(await san.esan(args), code);
    expect(sentence).toMatch(/^[A-Za-z].*[.!?]?$/);
    expect(sentence.length).toBeGreaterThan(10);

    const asJson = await san.esan([...args, "--json"]);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout.toString())).toEqual({ error: { code, message: sentence } });
  });

  it("names the process holding the data directory", async () => {
    const held = San.open(san.dataDir);
    try {
      const sentence = expectError(await san.esan(["volume", "list"]), "DataDirInUse");
      expect(sentence.toLowerCase()).toContain(`data directory ${san.dataDir} is in use by pid ${process.pid}`.toLowerCase());
    } finally {
      held.close();
    }
    expect((await san.esan(["volume", "list"])).code).toBe(0);
  });

  it("reports a missing SAN as NotFound", async () => {
    expectError(await run(["san", "show", "--data-dir", join(san.root, "nothing-here")]), "NotFound");
  });

  it.each([
    { name: "an unknown command", args: ["volume", "explode"], text: /unknown command/i },
    { name: "a missing required option", args: ["volume", "create", "vg1/x"], text: /required option '--size <size>' not specified/ },
    { name: "a missing argument", args: ["volume", "show"], text: /missing required argument/ },
    { name: "a sector size that is not offered", args: ["volume", "create", "vg1/x", "--size", "1MiB", "--sector-size", "1024"], text: /Allowed choices are 512, 4096/ },
  ])("exits 2 with a usage sentence for $name", async ({ args, text }) => {
    const result = await san.esan(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(text);
  });

  it("exits 2 and says how to name a data directory when none is given", async () => {
    const result = await run(["volume", "list"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("pass --data-dir DIR or set ESAN_DATA_DIR");
  });

  it("prints help and exits 0 for --help", async () => {
    const result = await run(["--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout.toString()).toMatch(/Usage: esan/);
    for (const group of ["san", "volume-group", "volume", "snapshot", "group-snapshot", "check"]) {
      expect(result.stdout.toString()).toContain(`  ${group}`);
    }
  });
});
