import { describe, expect, it } from "vitest";
import { CsiError } from "./errors.ts";
import { groupSnapshotParameters, snapshotParameters, volumeParameters } from "./parameters.ts";

describe("class parameters", () => {
  it("reads StorageClass parameters and ignores the sidecars' own", () => {
    expect(volumeParameters({ volumeGroup: "fast", sectorSize: "4096", fsType: "xfs", "csi.storage.k8s.io/pv/name": "pv-1" }, "csi")).toEqual({
      volumeGroup: "fast",
      sectorSize: 4096,
      fsType: "xfs",
    });
    expect(volumeParameters(undefined, "csi")).toEqual({ volumeGroup: "csi" });
    expect(snapshotParameters({})).toEqual({ tier: "instant" });
    expect(snapshotParameters({ tier: "durable" })).toEqual({ tier: "durable" });
    expect(groupSnapshotParameters({ fsfreeze: "true" })).toEqual({ fsfreeze: true });
  });

  it.each([
    [() => volumeParameters({ colour: "blue" }, "csi"), /parameter 'colour' is not known to esan/],
    [() => volumeParameters({ sectorSize: "1024" }, "csi"), /sectorSize must be 512 or 4096/],
    [() => volumeParameters({ fsType: "btrfs" }, "csi"), /fsType must be ext4 or xfs/],
    [() => volumeParameters({ volumeGroup: "Bad_Group" }, "csi"), /volumeGroup is not usable/],
    [() => snapshotParameters({ tier: "cold" }), /tier must be 'instant' or 'durable'/],
    [() => groupSnapshotParameters({ fsfreeze: "yes" }), /fsfreeze must be 'true' or 'false'/],
  ])("refuses a bad parameter with a sentence (%#)", (read, sentence) => {
    expect(read).toThrow(CsiError);
    expect(read).toThrow(sentence);
  });
});
