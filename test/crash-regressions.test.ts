// Deterministic crash regressions: a child makes unflushed changes and dies by SIGKILL; flushed data must survive.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { San } from "../src/storage/san.ts";
import { tempDataDir } from "./support/temp-dir.ts";

const child = path.join(import.meta.dirname, "fixtures", "kill-after.ts");
let dir: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir, cleanup } = tempDataDir("esan-crash-regression"));
});
afterEach(() => cleanup());

function crashChild(scenario: string): void {
  const result = spawnSync(process.execPath, [child, dir, scenario], { encoding: "utf8" });
  expect(result.signal, result.stderr).toBe("SIGKILL");
}

describe("after SIGKILL", () => {
  it("keeps a volume's flushed chunk when its clone wrote the extent they shared", () => {
    const san = San.create(dir, { capacityBytes: 1 << 20, chunkSizeBytes: 4096 });
    san.createVolumeGroup("vg");
    san.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 8192 });
    san.write("vg/a", 0, Buffer.alloc(4096, "A"));
    san.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: 8192, source: { kind: "volume", id: "vg/a" } });
    san.close();

    crashChild("write-after-cow-drop");

    const after = San.open(dir);
    expect(after.read("vg/a", 0, 4096).equals(Buffer.alloc(4096, "A"))).toBe(true);
    expect(after.read("vg/b", 0, 4096).equals(Buffer.alloc(4096, "A"))).toBe(true);
    expect(after.check()).toMatchObject({ ok: true, faults: [] });
    after.close();
  });

  it("does not hand out a trimmed extent before the trim is committed", () => {
    // Capacity for exactly three chunks: a's, and two for c, which can only come from a's if reuse were allowed.
    const san = San.create(dir, { capacityBytes: 3 * 4096, chunkSizeBytes: 4096 });
    san.createVolumeGroup("vg");
    san.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 4096 });
    san.createVolume({ volumeGroup: "vg", name: "c", sizeBytes: 8192 });
    san.write("vg/a", 0, Buffer.alloc(4096, "A"));
    san.close();

    crashChild("reuse-after-trim");

    const after = San.open(dir);
    // The trim was never flushed, so a may read its old data or zeroes, never c's bytes.
    const a = after.read("vg/a", 0, 4096);
    expect(a.equals(Buffer.alloc(4096, "A")) || a.equals(Buffer.alloc(4096))).toBe(true);
    expect(after.check()).toMatchObject({ ok: true, faults: [] });
    after.close();
  });
});
