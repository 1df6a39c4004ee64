import { describe, expect, it } from "vitest";
import { checkSnapshotCount, checkSnapshotRate, creationsInWindow, formatDuration } from "./limits.ts";
import { DEFAULT_LIMITS } from "./types.ts";
import { SnapshotCountExceededError, SnapshotOperationRateExceededError } from "./errors.ts";

const limits = DEFAULT_LIMITS;
const minute = 60_000;

describe("checkSnapshotCount", () => {
  it.each([
    [0, 1, true],
    [199, 1, true],
    [200, 1, false],
    [198, 3, false],
  ])("held %i adding %i allowed=%s", (held, adding, allowed) => {
    const run = (): void => checkSnapshotCount("vg1/db", held, adding, limits);
    if (allowed) expect(run).not.toThrow();
    else expect(run).toThrow(SnapshotCountExceededError);
  });

  it("names the volume, the limit and the count", () => {
    expect(() => checkSnapshotCount("vg1/db", 200, 1, limits)).toThrow(
      "Cannot create snapshot of vg1/db: the volume allows 200 snapshots and has 200. Delete an old snapshot of it first.",
    );
  });
});

describe("checkSnapshotRate", () => {
  const now = 10 * minute;

  it("allows up to the count inside the window", () => {
    expect(() => checkSnapshotRate("vg1/db", [now - 1, now - 2, now - 3, now - 4, now - 5, now - 6], now, limits)).not.toThrow();
  });

  it("forgets creations that left the window", () => {
    const old = Array.from({ length: 7 }, () => now - 5 * minute);
    expect(() => checkSnapshotRate("vg1/db", old, now, limits)).not.toThrow();
  });

  it("refuses the eighth and says when the oldest creation leaves the window", () => {
    const times = [1, 2, 3, 4, 5, 6, 7].map((m) => now - 5 * minute + m * 1000);
    let caught: unknown;
    try {
      checkSnapshotRate("vg1/db", times, now, limits);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SnapshotOperationRateExceededError);
    const err = caught as SnapshotOperationRateExceededError;
    expect(err.code).toBe("SnapshotOperationRateExceeded");
    expect(err.retryAfterMs).toBe(1000);
    expect(err.message).toContain("vg1/db");
    expect(err.message).toContain("7 snapshot creations per 5m");
    expect(err.message).toContain(new Date(now + 1000).toISOString());
  });

  it("keeps only creations inside the window, oldest first", () => {
    expect(creationsInWindow([now, now - 5 * minute, now - 1], now, limits)).toEqual([now - 1, now]);
  });
});

describe("formatDuration", () => {
  it.each([
    [250, "250ms"],
    [1000, "1s"],
    [90_000, "1m30s"],
    [5 * minute, "5m"],
    [3_600_000 + 61_000, "1h1m1s"],
  ])("%i ms is %s", (ms, text) => expect(formatDuration(ms)).toBe(text));
});
