import { expect, test } from "vitest";
import { OptionSyntaxError, parseInfoRequest, parseMetaContextRequest } from "./option-parsing.ts";

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
};

test("parses GO/INFO payloads", () => {
  const data = Buffer.concat([u32(4), Buffer.from("vg/a"), u16(2), u16(3), u16(1)]);
  expect(parseInfoRequest(data)).toEqual({ name: "vg/a", requests: [3, 1] });
});

test.each([
  ["a name longer than the data", Buffer.concat([u32(100), Buffer.from("vg/a"), u16(0)])],
  ["a request count that disagrees with the data", Buffer.concat([u32(0), u16(3), u16(1)])],
  ["trailing bytes", Buffer.concat([u32(0), u16(0), Buffer.from("x")])],
  ["a NUL in the name", Buffer.concat([u32(2), Buffer.from([0x61, 0]), u16(0)])],
  ["no data at all", Buffer.alloc(0)],
])("refuses GO/INFO with %s", (_name, data) => {
  expect(() => parseInfoRequest(data)).toThrow(OptionSyntaxError);
});

test("parses meta context payloads", () => {
  const data = Buffer.concat([u32(1), Buffer.from("x"), u32(2), u32(15), Buffer.from("base:allocation"), u32(5), Buffer.from("base:")]);
  expect(parseMetaContextRequest(data)).toEqual({ name: "x", queries: ["base:allocation", "base:"] });
});

test.each([
  ["a query count larger than the data could hold", Buffer.concat([u32(0), u32(0xffff_ffff)])],
  ["a query running past the end", Buffer.concat([u32(0), u32(1), u32(50), Buffer.from("base:")])],
  ["trailing bytes", Buffer.concat([u32(0), u32(0), Buffer.from("zz")])],
  ["an over-long query", Buffer.concat([u32(0), u32(1), u32(5000), Buffer.alloc(5000, 0x61)])],
])("refuses meta context payloads with %s", (_name, data) => {
  expect(() => parseMetaContextRequest(data)).toThrow(OptionSyntaxError);
});
