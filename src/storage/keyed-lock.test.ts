import { describe, expect, it } from "vitest";
import { BusyError } from "./errors.ts";
import { KeyedLock } from "./keyed-lock.ts";

describe("KeyedLock", () => {
  it("serializes calls on one key and releases after a throw", async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    let releaseFirst!: () => void;
    const first = lock.run("vg1/a", async () => {
      order.push("first start");
      await new Promise<void>((resolve) => (releaseFirst = resolve));
      order.push("first end");
      throw new Error("boom");
    });
    const second = lock.run("vg1/a", () => order.push("second"));
    await Promise.resolve();
    releaseFirst();
    await expect(first).rejects.toThrow("boom");
    await second;
    expect(order).toEqual(["first start", "first end", "second"]);
    expect(lock.isHeld("vg1/a")).toBe(false);
  });

  it("lets other keys run while one is held", async () => {
    const lock = new KeyedLock();
    let release!: () => void;
    const held = lock.run("vg1/a", () => new Promise<void>((resolve) => (release = resolve)));
    await expect(lock.run("vg1/b", () => "b")).resolves.toBe("b");
    release();
    await held;
  });

  it("refuses a conflicting tryRun with Busy", async () => {
    const lock = new KeyedLock();
    let release!: () => void;
    const held = lock.run("vg1/a", () => new Promise<void>((resolve) => (release = resolve)));
    await expect(lock.tryRun("vg1/a", "snapshot vg1/a", () => 1)).rejects.toBeInstanceOf(BusyError);
    await expect(lock.tryRun("vg1/a", "snapshot vg1/a", () => 1)).rejects.toThrow(
      "Cannot snapshot vg1/a: another operation on vg1/a is in progress. Retry when it completes.",
    );
    release();
    await held;
    await expect(lock.tryRun("vg1/a", "snapshot vg1/a", () => 2)).resolves.toBe(2);
  });
});
