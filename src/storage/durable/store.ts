// The durable tier's object store: immutable objects by key, small enough for an S3-compatible store to implement.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";

/**
 * Immutable objects addressed by `/`-separated keys. An object is written whole by `put` and never changed in
 * place; writing a key again replaces it whole (only ever with the same bytes, when a job resumes after a crash).
 * A `put` that returns is durable, and a reader sees either no object or all of it.
 */
export interface DurableStore {
  /** Where the store lives, for messages (a directory path or a bucket URL). */
  readonly location: string;
  put(key: string, data: Uint8Array): Promise<void>;
  /** The whole object, or `length` bytes of it from `offset`; NotFound when there is none. */
  get(key: string, range?: { offset: number; length: number }): Promise<Buffer>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Removes an object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
}

const KEY_PATTERN = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.split("/").some((part) => part === "." || part === "..")) {
    throw new InvalidArgumentError(`The object key '${key}' is not allowed: use '/'-separated parts of letters, digits, '.', '_' and '-'.`);
  }
}

/** A DurableStore in a directory, which may sit on other storage than the SAN's data directory. */
export class DirectoryStore implements DurableStore {
  readonly location: string;

  constructor(root: string) {
    this.location = path.resolve(root);
    fs.mkdirSync(this.location, { recursive: true });
    discardOrphanedTemporaries(this.location);
  }

  /** Writes a temporary file, fsyncs it, renames it into place and fsyncs the directory: all or nothing, durable. */
  async put(key: string, data: Uint8Array): Promise<void> {
    checkKey(key);
    const target = path.join(this.location, key);
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    // Unique per call: a job resumed after a reopen may put the same key while the closed one's put still runs.
    const temp = `${target}.${process.pid}.${crypto.randomUUID()}.tmp`;
    const handle = await fs.promises.open(temp, "w", 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(temp, target);
    const dir = await fs.promises.open(path.dirname(target), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Buffer> {
    checkKey(key);
    const file = path.join(this.location, key);
    try {
      if (!range) return await fs.promises.readFile(file);
      const handle = await fs.promises.open(file, "r");
      try {
        const buffer = Buffer.alloc(range.length);
        const { bytesRead } = await handle.read(buffer, 0, range.length, range.offset);
        return buffer.subarray(0, bytesRead);
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new NotFoundError(`The durable store ${this.location} has no object ${key}; it may have been deleted or never finished.`);
      }
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (dir: string, relative: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
        throw err;
      }
      for (const entry of entries) {
        const key = relative ? `${relative}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
        else if (!entry.name.endsWith(".tmp") && key.startsWith(prefix)) keys.push(key);
      }
    };
    await walk(this.location, "");
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await fs.promises.rm(path.join(this.location, key), { force: true });
  }
}

/** `put`'s temporary names: the target, the writer's pid, a random id. */
const TEMPORARY = /\.(\d+)\.[0-9a-f-]{36}\.tmp$/;

/**
 * Removes the temporary files of writers that died mid-put (a SIGKILL between open and rename). A live writer's
 * files stay: several SANs may share one store directory.
 */
function discardOrphanedTemporaries(root: string): void {
  for (const entry of fs.readdirSync(root, { recursive: true, withFileTypes: true })) {
    const pid = TEMPORARY.exec(entry.name)?.[1];
    if (entry.isFile() && pid !== undefined && !processAlive(Number(pid))) fs.rmSync(path.join(entry.parentPath, entry.name), { force: true });
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
