// BLOCK_STATUS (base:allocation) through real clients: nbdinfo --map and nbdsh match the engine's allocation map.
import { afterAll, beforeAll, expect, test } from "vitest";
import type { ByteRange } from "../../src/storage/types.ts";
import { nbdsh, requireClients, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const CHUNK = 64 * KiB;
let f: NbdFixture;

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

/** Data ranges of an nbdinfo --map, coalesced; checks the map covers [0, size) with no gap or overlap. */
function dataRanges(map: MapEntry[], sizeBytes: number): ByteRange[] {
  let position = 0;
  const ranges: ByteRange[] = [];
  for (const entry of map) {
    expect(entry.offset).toBe(position);
    position += entry.length;
    if (entry.type === 0) {
      const last = ranges[ranges.length - 1];
      if (last && last.offset + last.length === entry.offset) last.length += entry.length;
      else ranges.push({ offset: entry.offset, length: entry.length });
    } else {
      expect(entry.type).toBe(3);
    }
  }
  expect(position).toBe(sizeBytes);
  return ranges;
}

async function nbdinfoMap(exportName: string): Promise<MapEntry[]> {
  const { stdout } = await runClientOk("nbdinfo", ["--map", "--json", f.nbd.uri(exportName)], { timeoutMs: 60_000 });
  return JSON.parse(stdout) as MapEntry[];
}

/** A deterministic scatter of chunk-sized and sub-chunk writes. */
function scatter(volumeId: string, sizeBytes: number, count: number, seed: number): void {
  let state = seed;
  const next = (): number => (state = (state * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < count; i++) {
    const chunk = next() % Math.floor(sizeBytes / CHUNK);
    const runChunks = 1 + (next() % 4);
    const length = Math.min(runChunks * CHUNK, sizeBytes - chunk * CHUNK);
    f.san.write(volumeId, chunk * CHUNK + (next() % 2) * 512, Buffer.alloc(Math.min(length, 512 + (next() % 8) * 4096), 0x11));
  }
}

beforeAll(async () => {
  requireClients(["nbdinfo", "nbdsh"]);
  f = await startNbdFixture({ san: { capacityBytes: 1100 * GiB } });
  f.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 256 * MiB });
  scatter("vg/v", 256 * MiB, 300, 7);
  f.san.createSnapshot({ volumeGroup: "vg", name: "s", sourceVolumeId: "vg/v" });
  f.san.trim("vg/v", 0, 128 * MiB);
  scatter("vg/v", 256 * MiB, 50, 99);
  f.san.createVolume({ volumeGroup: "vg", name: "huge", sizeBytes: 1024 * GiB });
  for (const offset of [0, 3 * GiB, 700 * GiB, 1024 * GiB - CHUNK]) f.san.write("vg/huge", offset, Buffer.alloc(CHUNK, 1));
});

afterAll(async () => {
  await f.teardown();
});

test("nbdinfo --map of a volume matches the engine's allocation exactly", async () => {
  const map = await nbdinfoMap("vg/v");
  expect(dataRanges(map, 256 * MiB)).toEqual(f.san.allocatedRanges("vg/v"));
  expect(map.length).toBeGreaterThan(50);
});

test("nbdinfo --map of a snapshot shows its own (older) allocation", async () => {
  const map = await nbdinfoMap("vg/s");
  const expected = f.san.allocatedRanges("vg/s");
  expect(dataRanges(map, 256 * MiB)).toEqual(expected);
  expect(expected).not.toEqual(f.san.allocatedRanges("vg/v"));
});

test("a sparse 1 TiB volume maps quickly to four data extents", async () => {
  const started = Date.now();
  const map = await nbdinfoMap("vg/huge");
  expect(dataRanges(map, 1024 * GiB)).toEqual([
    { offset: 0, length: CHUNK },
    { offset: 3 * GiB, length: CHUNK },
    { offset: 700 * GiB, length: CHUNK },
    { offset: 1024 * GiB - CHUNK, length: CHUNK },
  ]);
  expect(Date.now() - started).toBeLessThan(20_000);
});

test("REQ_ONE returns one extent no longer than asked; a plain query describes the range in order", async () => {
  const result = await nbdsh(
    f.nbd.uri("vg/huge"),
    `
def show(offset, count, flags=0):
    seen = []
    h.block_status(count, offset, lambda ctx, off, entries, err: seen.append((ctx, off, list(entries))), flags)
    print(seen)
show(65536, 3 * 1073741824)
show(65536, 3 * 1073741824, nbd.CMD_FLAG_REQ_ONE)
show(3 * 1073741824, 1073741824, nbd.CMD_FLAG_REQ_ONE)
`,
    { baseAllocation: true },
  );
  expect(result.stderr).toBe("");
  expect(result.stdout.trim().split("\n")).toEqual([
    `[('base:allocation', 65536, [${3 * GiB - 64 * KiB}, 3, 65536, 0])]`,
    `[('base:allocation', 65536, [${3 * GiB - 64 * KiB}, 3])]`,
    `[('base:allocation', ${3 * GiB}, [65536, 0])]`,
  ]);
});
