// Exclusive ownership of a data directory by one live process, through a pid file created atomically.
import fs from "node:fs";
import path from "node:path";
import { DataDirInUseError } from "./errors.ts";

const LOCK_FILE = "lock";

/** Holds DIR/lock for this process; a second owner gets "data directory D is in use by pid N". */
export class DirLock {
  readonly #path: string;
  #held = false;

  private constructor(lockPath: string) {
    this.#path = lockPath;
  }

  /** Takes the lock, taking over a lock file left by a process that no longer runs. */
  static acquire(dataDir: string): DirLock {
    const lockPath = path.join(dataDir, LOCK_FILE);
    const lock = new DirLock(lockPath);
    for (let attempt = 0; attempt < 3; attempt++) {
      // link() is atomic: exactly one process wins the name even when several race for a stale lock.
      const temp = `${lockPath}.${process.pid}.tmp`;
      fs.writeFileSync(temp, `${process.pid}\n`);
      try {
        fs.linkSync(temp, lockPath);
        lock.#held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      } finally {
        fs.rmSync(temp, { force: true });
      }
      const owner = readOwner(lockPath);
      if (owner !== null && isAlive(owner)) {
        throw new DataDirInUseError(
          `data directory ${dataDir} is in use by pid ${owner}; stop that process or use its API instead.`,
          owner,
        );
      }
      fs.rmSync(lockPath, { force: true });
    }
    throw new DataDirInUseError(`data directory ${dataDir} is being locked by another process; retry.`, -1);
  }

  /** Gives the directory up; safe to call twice. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    if (readOwner(this.#path) === process.pid) fs.rmSync(this.#path, { force: true });
  }
}

function readOwner(lockPath: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(lockPath, "utf8").trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
