// Table-driven tests of id, source and volume-list parsing.
import { describe, expect, it } from "vitest";
import { EsanError } from "../storage/errors.ts";
import { parseObjectId, parseVolumeList, parseVolumeSource } from "./ids.ts";

describe("parseObjectId", () => {
  it.each([
    ["vg1/db", { id: "vg1/db", volumeGroup: "vg1", name: "db" }],
    ["a/b-1", { id: "a/b-1", volumeGroup: "a", name: "b-1" }],
  ])("splits %j", (text, ref) => {
    expect(parseObjectId(text)).toEqual(ref);
  });

  it.each(["db", "", "/db", "vg1/", "vg1/db/x", "vg1//db"])("rejects %j", (text) => {
    expect(() => parseObjectId(text, "volume")).toThrow(/^Cannot read volume ".*": write it as VOLUME-GROUP\/NAME/);
  });
});

describe("parseVolumeSource", () => {
  it.each([
    ["snapshot:vg1/s1", { kind: "snapshot", id: "vg1/s1" }],
    ["volume:vg1/v1", { kind: "volume", id: "vg1/v1" }],
  ])("reads %j", (text, source) => {
    expect(parseVolumeSource(text)).toEqual(source);
  });

  it.each(["vg1/s1", "disk:vg1/s1", "snapshot:", "snapshot:s1", ":vg1/s1"])("rejects %j", (text) => {
    expect(() => parseVolumeSource(text)).toThrow(EsanError);
  });
});

describe("parseVolumeList", () => {
  it.each([
    ["vg1/a,vg1/b", ["vg1/a", "vg1/b"]],
    ["a, b", ["vg1/a", "vg1/b"]],
    ["vg2/a", ["vg2/a"]],
  ])("reads %j", (text, ids) => {
    expect(parseVolumeList(text, "vg1")).toEqual(ids);
  });

  it.each(["", "a,,b", "a,", "x/y/z"])("rejects %j", (text) => {
    expect(() => parseVolumeList(text, "vg1")).toThrow(EsanError);
  });
});
