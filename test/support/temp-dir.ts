// Temporary data directories for engine tests, on tmpfs when the machine has one (fsync is cheap there).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** A fresh empty directory path (not created) under /dev/shm or the OS temp dir; `cleanup` removes it. */
export function tempDataDir(prefix = "esan-test"): { dir: string; cleanup: () => void } {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const parent = fs.mkdtempSync(path.join(base, `${prefix}-`));
  return { dir: path.join(parent, "san"), cleanup: () => fs.rmSync(parent, { recursive: true, force: true }) };
}

/** A clock tests move by hand. */
export class FakeClock {
  nowMs: number;

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.nowMs = startMs;
  }

  readonly now = (): number => this.nowMs;

  advance(ms: number): void {
    this.nowMs += ms;
  }
}
