// Tests of the human renderings: alignment, IEC sizes, empty lists, diffs and check reports.
import { describe, expect, it } from "vitest";
import type { CheckReport, DiffResult, VolumeInfo } from "../storage/types.ts";
import { describeSource, formatCheckReport, formatDiff, formatVolume, formatVolumeTable, keyValues, sizeWithBytes, table } from "./format.ts";

const volume: VolumeInfo = {
  id: "vg1/db",
  volumeGroup: "vg1",
  name: "db",
  uniqueId: "u-1",
  sizeBytes: 1024 ** 3,
  sectorSize: 4096,
  creationData: { kind: "snapshot", sourceId: "vg1/s1", sourceUniqueId: "u-0" },
  createdAt: "2025-01-01T00:00:00.000Z",
  allocatedBytes: 65536,
  usedBytes: 0,
  snapshotCount: 2,
  hydration: null,
};

describe("keyValues", () => {
  it("aligns values in one column", () => {
    expect(keyValues([["id", "vg1/db"], ["sector size", "512"]])).toBe("id:          vg1/db\nsector size: 512");
  });
});

describe("table", () => {
  it("pads columns to the widest cell and trims line ends", () => {
    expect(table(["ID", "SIZE"], [["vg1/a", "1 GiB"], ["vg1/bb", "4 KiB"]], "none")).toBe("ID      SIZE\nvg1/a   1 GiB\nvg1/bb  4 KiB");
  });

  it("prints the empty text when there are no rows", () => {
    expect(table(["ID"], [], "no volumes")).toBe("no volumes");
  });
});

describe("renderings", () => {
  it.each([
    [512, "512 B"],
    [1536, "1.5 KiB (1536 bytes)"],
    [1024 ** 3, "1 GiB (1073741824 bytes)"],
  ])("sizeWithBytes(%d) is %j", (bytes, text) => {
    expect(sizeWithBytes(bytes)).toBe(text);
  });

  it.each([
    [{ kind: "none" } as const, "empty"],
    [{ kind: "volume", sourceId: "vg1/a", sourceUniqueId: "u" } as const, "volume vg1/a"],
  ])("describes source %j as %j", (source, text) => {
    expect(describeSource(source)).toBe(text);
  });

  it("shows a volume as key: value lines with IEC sizes", () => {
    const text = formatVolume(volume);
    expect(text).toMatch(/^id:\s+vg1\/db$/m);
    expect(text).toMatch(/^size:\s+1 GiB \(1073741824 bytes\)$/m);
    expect(text).toMatch(/^source:\s+snapshot vg1\/s1$/m);
  });

  it("lists volumes as a table", () => {
    expect(formatVolumeTable([volume]).split("\n")).toEqual([
      "ID      SIZE   SECTOR  ALLOCATED  USED  SNAPSHOTS  SOURCE",
      "vg1/db  1 GiB  4096    64 KiB     0 B   2          snapshot vg1/s1",
    ]);
    expect(formatVolumeTable([])).toBe("no volumes");
  });

  it("summarizes a diff and lists its ranges", () => {
    const diff: DiffResult = { chunkSizeBytes: 65536, changedBytes: 131072, ranges: [{ offset: 131072, length: 131072 }] };
    const lines = formatDiff("vg1/s1", "vg1/db", diff).split("\n");
    expect(lines[0]).toBe("vg1/db differs from vg1/s1 in 128 KiB (131072 bytes) over 1 range(s) of 64 KiB chunks");
    expect(lines[2]).toMatch(/^131072\s+131072\s+128 KiB\s+128 KiB$/);
    expect(formatDiff("a/b", "a/c", { chunkSizeBytes: 4096, changedBytes: 0, ranges: [] })).not.toContain("\n");
  });

  it.each([
    [{ ok: true, faults: [], pages: 3, extents: 10, freeExtents: 2 }, "ok: no faults (3 map pages, 10 extents, 2 free extents)"],
    [
      { ok: false, faults: ["extent 4 has refcount 2 but 1 owner"], pages: 1, extents: 5, freeExtents: 0 },
      "FAILED: 1 fault(s) (1 map pages, 5 extents, 0 free extents)\n  extent 4 has refcount 2 but 1 owner",
    ],
  ])("renders check report %#", (report: CheckReport, text) => {
    expect(formatCheckReport(report)).toBe(text);
  });
});
