// The node's record of its stagings: one directory per staged volume under STATE_DIR/volumes, holding staging.json
// (written atomically: temporary file, fsync, rename, fsync of the directory), the TLS-PSK key file (0600, in a 0700
// directory, never logged) and the nbdfuse mount point. A restarted plugin reads these to re-attach before serving.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { AccessModeName } from "./types.ts";
import type { AccessSpec } from "./validate.ts";

/** How a staged volume's block device is attached. */
export type AttachmentState =
  | {
      kind: "nbdfuse";
      /** FUSE mount point nbdfuse serves; the export is the file `disk` in it. */
      fuseDir: string;
      diskFile: string;
      /** nbdfuse's pid and its start time (clock ticks since boot, /proc/PID/stat field 22), so a reused pid is not mistaken for it. */
      pid: number;
      startTime: number;
      /** The loop device over `diskFile`, once set up. */
      loopDevice?: string;
    }
  | { kind: "kernel"; device: string };

/** The connection details of the attachment, without the key (which lives only in the 0600 key file). */
export interface ConnectionRecord {
  nbdUri: string;
  nbdAddress: string;
  exportName: string;
  pskIdentity: string;
}

/** One staged (or being staged) volume. */
export interface StagingRecord {
  version: 1;
  volumeId: string;
  stagingTargetPath: string;
  access: AccessSpec;
  mode: AccessModeName;
  readOnly: boolean;
  connection: ConnectionRecord;
  attachment: AttachmentState | null;
  /** The block device the filesystem is on or the staging path exposes (loop or nbd device), once attached. */
  device: string | null;
  /** The filesystem found or made on the device (mount access only), once known. */
  fsType: string | null;
  stagedAt: string;
}

const RECORD_FILE = "staging.json";
/** Name qemu's tls-creds-psk expects in its directory; nbdkit takes any name. */
export const PSK_FILE = "keys.psk";

/** Writes `data` to `file` atomically and durably with `mode`: a crash leaves the old content or the new, never a mix. */
export function writeFileAtomic(file: string, data: string, mode: number): void {
  const dir = path.dirname(file);
  const temporary = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(temporary, "w", mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  const dirFd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/** The stagings of one node plugin, kept under `stateDir`. */
export class StagingStore {
  readonly stateDir: string;
  readonly #volumesDir: string;

  constructor(stateDir: string) {
    this.stateDir = path.resolve(stateDir);
    this.#volumesDir = path.join(this.stateDir, "volumes");
  }

  /** Creates the state directories, private to root (0700), and tightens them if they already exist. */
  init(): void {
    for (const dir of [this.stateDir, this.#volumesDir]) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.chmodSync(dir, 0o700);
    }
  }

  /** The directory of one volume: a hash of its id, so any id is a safe, short file name. */
  volumeDir(volumeId: string): string {
    return path.join(this.#volumesDir, createHash("sha256").update(volumeId).digest("hex").slice(0, 32));
  }

  /** The key file of a volume (`IDENTITY:HEXKEY`, mode 0600). */
  pskFile(volumeId: string): string {
    return path.join(this.volumeDir(volumeId), PSK_FILE);
  }

  /** Every recorded staging; a record that cannot be read is skipped with `onUnreadable` called. */
  list(onUnreadable: (file: string, error: unknown) => void = () => undefined): StagingRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.#volumesDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const records: StagingRecord[] = [];
    for (const name of names.sort()) {
      const file = path.join(this.#volumesDir, name, RECORD_FILE);
      try {
        records.push(JSON.parse(fs.readFileSync(file, "utf8")) as StagingRecord);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") onUnreadable(file, error);
      }
    }
    return records;
  }

  /** The record of `volumeId`, or undefined when it is not staged. */
  get(volumeId: string): StagingRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.volumeDir(volumeId), RECORD_FILE), "utf8")) as StagingRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /** Saves a record atomically (creating the volume's 0700 directory). */
  save(record: StagingRecord): void {
    const dir = this.volumeDir(record.volumeId);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path.join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, 0o600);
  }

  /** Writes the key file of a volume: `IDENTITY:HEXKEY`, mode 0600, atomically. The key is never logged. */
  writePsk(volumeId: string, identity: string, key: string): string {
    const dir = this.volumeDir(volumeId);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = this.pskFile(volumeId);
    writeFileAtomic(file, `${identity}:${key}\n`, 0o600);
    return file;
  }

  /**
   * Forgets a staging: removes its directory (record, key file, logs). The caller has already unmounted the FUSE mount
   * point inside it; a directory that still holds a mount point is refused rather than recursed into.
   */
  remove(volumeId: string, isMountPoint: (dir: string) => boolean): void {
    const dir = this.volumeDir(volumeId);
    if (!fs.existsSync(dir)) return;
    for (const name of fs.readdirSync(dir)) {
      const entry = path.join(dir, name);
      if (isMountPoint(entry)) throw new Error(`Cannot forget the staging of ${volumeId}: ${entry} is still a mount point.`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
