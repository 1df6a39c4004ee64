import { describe, expect, it } from "vitest";
import { validateName } from "../storage/names.ts";
import { CsiError } from "./errors.ts";
import { checkCsiString, engineName, parseSnapshotId } from "./ids.ts";

describe("engineName", () => {
  it("keeps a name that already is a valid engine name", () => {
    expect(engineName("pvc-0b0c9a4e-1d6f-4a53-9b3e-2f4c1d2e3f40")).toBe("pvc-0b0c9a4e-1d6f-4a53-9b3e-2f4c1d2e3f40");
  });

  it.each(["Sanity-Volume_A", "a".repeat(128), "ünïcode name", "---", "UPPER", "x".repeat(64)])("maps %s to a valid, stable engine name", (name) => {
    const mapped = engineName(name);
    expect(() => validateName("volume", mapped)).not.toThrow();
    expect(engineName(name)).toBe(mapped);
  });

  it("gives different names different engine names, even when they clean up alike", () => {
    expect(engineName("Vol_A")).not.toBe(engineName("vol-a"));
    expect(engineName("a".repeat(100))).not.toBe(engineName("a".repeat(101)));
  });
});

describe("parseSnapshotId", () => {
  it("tells the tiers apart and refuses ids esan never issues", () => {
    expect(parseSnapshotId("vg1/snap")).toEqual({ tier: "instant", id: "vg1/snap", volumeGroup: "vg1", name: "snap" });
    expect(parseSnapshotId("disk-snapshot:nightly")).toEqual({ tier: "durable", name: "nightly" });
    expect(parseSnapshotId("fake-vol-id")).toBeNull();
    expect(parseSnapshotId("disk-snapshot:Bad/Name")).toBeNull();
  });
});

describe("checkCsiString", () => {
  it.each([
    ["", /is required/],
    ["x".repeat(129), /129 bytes long; CSI allows at most 128/],
    ["bad\u0001name", /control character/],
  ])("refuses %j", (value, sentence) => {
    expect(() => checkCsiString("name", value)).toThrow(CsiError);
    expect(() => checkCsiString("name", value)).toThrow(sentence);
  });

  it("accepts 128 bytes", () => {
    expect(checkCsiString("name", "x".repeat(128))).toHaveLength(128);
  });
});
