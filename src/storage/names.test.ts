import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "./errors.ts";
import { parseId, validateName } from "./names.ts";

describe("validateName", () => {
  it.each(["a", "vol-1", "0abc", "a".repeat(63)])("accepts %s", (name) => expect(() => validateName("volume", name)).not.toThrow());

  it.each([
    ["", "is required"],
    ["a".repeat(64), "64 characters long; the limit is 63"],
    ["Vol", "use only a-z, 0-9 and '-'"],
    ["vol_1", "use only"],
    ["-vol", "starting and ending"],
    ["vol-", "starting and ending"],
    ["vol/x", "use only"],
  ])("refuses %j with a sentence", (name, text) => {
    expect(() => validateName("volume", name)).toThrow(InvalidArgumentError);
    expect(() => validateName("volume", name)).toThrow(text);
  });
});

describe("parseId", () => {
  it("splits a volume group and a name", () => expect(parseId("volume", "vg1/db")).toEqual({ volumeGroup: "vg1", name: "db" }));

  it.each(["db", "vg1/db/x", "/db", "vg1/"])("refuses %j", (id) => expect(() => parseId("volume", id)).toThrow(InvalidArgumentError));
});
