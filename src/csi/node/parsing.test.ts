// The node's pure parsers and decisions: mountinfo, /proc/PID/stat, blkid output, device numbers, and the
// format-or-mount decision that must never format data.
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CsiError } from "../errors.ts";
import { parseBlkidExport } from "./filesystem.ts";
import { majorMinorOf, parseMountInfo } from "./mounts.ts";
import { parseProcStat } from "./processes.ts";
import { decideFilesystem } from "./stage.ts";

describe("parseMountInfo", () => {
  it("reads fields, optional tags and escaped paths", () => {
    const text = [
      "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
      "40 22 7:3 / /var/lib/esan/staging/v rw,relatime shared:5 - ext4 /dev/loop3 rw",
      "41 22 0:5 /loop3 /pods/p/block rw,nosuid - devtmpfs udev rw",
      "garbage",
    ].join("\n");
    expect(parseMountInfo(text)).toEqual([
      { mountId: 36, majorMinor: "98:0", root: "/mnt1", mountPoint: "/mnt two", options: ["rw", "noatime"], fsType: "ext3", source: "/dev/root" },
      { mountId: 40, majorMinor: "7:3", root: "/", mountPoint: "/var/lib/esan/staging/v", options: ["rw", "relatime"], fsType: "ext4", source: "/dev/loop3" },
      { mountId: 41, majorMinor: "0:5", root: "/loop3", mountPoint: "/pods/p/block", options: ["rw", "nosuid"], fsType: "devtmpfs", source: "udev" },
    ]);
  });

  it("decodes Linux device numbers", () => {
    expect(majorMinorOf(0x0703)).toBe("7:3");
    expect(majorMinorOf((259 << 8) | 1)).toBe("259:1");
    expect(majorMinorOf((7 << 8) | 0x2a | (0x1 << 20))).toBe("7:298");
  });
});

describe("parseProcStat", () => {
  it("finds state and start time, even with spaces and parentheses in the command name", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i));
    fields[0] = "S"; // field 3
    fields[19] = "123456"; // field 22
    expect(parseProcStat(`4242 (nbd (fuse) x) ${fields.join(" ")}`)).toEqual({ state: "S", startTime: 123456 });
    expect(parseProcStat("nonsense")).toBeUndefined();
  });
});

describe("parseBlkidExport", () => {
  it("reads KEY=VALUE lines", () => {
    expect(parseBlkidExport("DEVNAME=/dev/loop0\nUUID=abc\nTYPE=ext4\nUSAGE=filesystem\n")).toMatchObject({ TYPE: "ext4", UUID: "abc" });
  });
});

describe("decideFilesystem", () => {
  const refused = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(CsiError);
      expect((error as CsiError).code).toBe(status.FAILED_PRECONDITION);
      return (error as CsiError).message;
    }
    throw new Error("expected a refusal");
  };

  it.each([
    [{ kind: "blank" } as const, "" as const, { action: "format", fsType: "ext4" }],
    [{ kind: "blank" } as const, "xfs" as const, { action: "format", fsType: "xfs" }],
    [{ kind: "filesystem", type: "xfs" } as const, "" as const, { action: "mount", fsType: "xfs" }],
    [{ kind: "filesystem", type: "ext4" } as const, "ext4" as const, { action: "mount", fsType: "ext4" }],
  ])("%j with fs_type %j → %j", (content, requested, decision) => {
    expect(decideFilesystem(content, requested, false, "vg/v")).toEqual(decision);
  });

  it.each([
    ["another filesystem than asked", { kind: "filesystem", type: "ext4" } as const, "xfs" as const, false, /holds a ext4 filesystem but fs_type xfs/],
    ["a filesystem esan does not mount", { kind: "filesystem", type: "btrfs" } as const, "" as const, false, /btrfs/],
    ["a partition table", { kind: "other", what: "a gpt partition table" } as const, "" as const, false, /gpt partition table.*never formats/],
    ["unrecognised data", { kind: "unknown-data" } as const, "ext4" as const, false, /not blank.*never formats/],
    ["a blank volume staged read-only", { kind: "blank" } as const, "ext4" as const, true, /read-only staging cannot format/],
  ])("refuses %s", (_name, content, requested, readOnly, message) => {
    expect(refused(() => decideFilesystem(content, requested, readOnly, "vg/v"))).toMatch(message);
  });
});
