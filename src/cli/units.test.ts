// Table-driven tests of size, duration and rate parsing and formatting.
import { describe, expect, it } from "vitest";
import { EsanError } from "../storage/errors.ts";
import { formatDuration, formatSize, parseCount, parseDuration, parseRate, parseSize } from "./units.ts";

const GiB = 1024 ** 3;

describe("parseSize", () => {
  it.each([
    ["0", 0],
    ["512", 512],
    [" 4096 ", 4096],
    ["64KiB", 64 * 1024],
    ["64K", 64 * 1024],
    ["64k", 64 * 1024],
    ["64kib", 64 * 1024],
    ["1MiB", 1024 ** 2],
    ["1M", 1024 ** 2],
    ["1GiB", GiB],
    ["1 GiB", GiB],
    ["3G", 3 * GiB],
    ["10TiB", 10 * 1024 ** 4],
    ["2T", 2 * 1024 ** 4],
    ["1PiB", 1024 ** 5],
    ["4P", 4 * 1024 ** 5],
  ])("reads %j as %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    "",
    "GiB",
    "1GB",
    "1 gigabyte",
    "1.5GiB",
    "-1",
    "1e9",
    "0x10",
    "1EiB",
    "1GiB2",
    "10 TiB extra",
    "99999999PiB",
  ])("rejects %j with an InvalidArgument sentence", (text) => {
    let caught: unknown;
    try {
      parseSize(text, "--size");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EsanError);
    expect((caught as EsanError).code).toBe("InvalidArgument");
    expect((caught as EsanError).message).toMatch(/^Cannot (read|use) --size ".*": .+\.$/);
  });
});

describe("formatSize", () => {
  it.each([
    [0, "0 B"],
    [512, "512 B"],
    [1023, "1023 B"],
    [1024, "1 KiB"],
    [1536, "1.5 KiB"],
    [64 * 1024, "64 KiB"],
    [GiB, "1 GiB"],
    [GiB + 1, "1 GiB"],
    [10 * 1024 ** 4, "10 TiB"],
    [3 * 1024 ** 5, "3 PiB"],
    [2048 * 1024 ** 5, "2048 PiB"],
  ])("formats %d as %j", (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["2d", 172_800_000],
    ["5M", 300_000],
  ])("reads %j as %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "5", "0s", "1.5m", "5 minutes", "m", "-5m"])("rejects %j", (text) => {
    expect(() => parseDuration(text)).toThrow(EsanError);
  });
});

describe("formatDuration", () => {
  it.each([
    [300_000, "5m"],
    [30_000, "30s"],
    [90_000, "90s"],
    [3_600_000, "1h"],
    [86_400_000, "1d"],
    [1500, "1500ms"],
  ])("formats %d ms as %j", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe("parseRate", () => {
  it.each([
    ["7/5m", { count: 7, windowMs: 300_000 }],
    ["1/30s", { count: 1, windowMs: 30_000 }],
    ["100/1h", { count: 100, windowMs: 3_600_000 }],
  ])("reads %j", (text, rate) => {
    expect(parseRate(text)).toEqual(rate);
  });

  it.each(["7", "7/", "/5m", "0/5m", "7/5", "7/5m/1", "seven/5m", "-1/5m"])("rejects %j", (text) => {
    expect(() => parseRate(text)).toThrow(EsanError);
  });
});

describe("parseCount", () => {
  it.each([
    ["1", 1],
    ["200", 200],
  ])("reads %j", (text, count) => {
    expect(parseCount(text)).toBe(count);
  });

  it.each(["0", "-3", "1.5", "", "ten", "1e3"])("rejects %j", (text) => {
    expect(() => parseCount(text)).toThrow(EsanError);
  });
});
