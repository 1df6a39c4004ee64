// One opened data directory: its lock, metadata database, extents file and page store, and the commit protocol.
import fs from "node:fs";
import path from "node:path";
import type { ImageRecord } from "./catalog.ts";
import { DirLock } from "./dir-lock.ts";
import { AlreadyExistsError, CorruptError, EsanError, FailedPreconditionError, NotFoundError } from "./errors.ts";
import { ExtentFile } from "./extent-file.ts";
import type { IoContext } from "./image-io.ts";
import { FORMAT_VERSION, MetaDb } from "./metadata.ts";
import { PageStore } from "./page-store.ts";
import { DEFAULT_LIMITS, type SanLimits } from "./types.ts";

const META_FILE = "meta.sqlite";
const EXTENTS_FILE = "extents.dat";

/** The fixed settings of a SAN, written once by `initialize`. */
export interface SanSettings {
  capacityBytes: number;
  chunkSizeBytes: number;
  limits: SanLimits;
  createdAtMs: number;
}

/**
 * The storage session of a SAN. Writes land in the extents file at once, but the maps that point at new extents
 * reach the database only at a commit (flush, FUA, or any catalog change). A commit fsyncs the data first, then
 * commits the metadata in one SQLite transaction, so committed metadata never points at data that is not on disk.
 */
export class DataDir {
  readonly path: string;
  readonly settings: SanSettings;
  readonly db: MetaDb;
  readonly store: PageStore;
  readonly io: IoContext;
  readonly #lock: DirLock;
  readonly #file: ExtentFile;
  /** Images whose map or size changed since the last commit. */
  readonly #dirtyMaps = new Set<ImageRecord>();
  /** True when extent data was written since the last fdatasync. */
  #dataDirty = false;
  #closed = false;
  /** Set when a mutation or commit failed half-way: memory no longer matches disk, and only a reopen fixes that. */
  #failure: unknown = null;

  private constructor(dataDir: string, lock: DirLock) {
    this.path = dataDir;
    this.#lock = lock;
    try {
      this.db = new MetaDb(path.join(dataDir, META_FILE));
      const settings = this.db.settings();
      if (Number(settings.get("formatVersion")) !== FORMAT_VERSION) {
        throw new CorruptError(
          `The data directory ${dataDir} has metadata format ${String(settings.get("formatVersion"))}; this esan reads format ${FORMAT_VERSION}.`,
        );
      }
      this.settings = {
        capacityBytes: Number(settings.get("capacityBytes")),
        chunkSizeBytes: Number(settings.get("chunkSizeBytes")),
        // Limits added in later versions take their defaults in SANs created before them.
        limits: { ...DEFAULT_LIMITS, ...(JSON.parse(settings.get("limits") ?? "{}") as Partial<SanLimits>) },
        createdAtMs: Number(settings.get("createdAt")),
      };
      const counters = { extentHighWater: Number(settings.get("extentHighWater")), nextPageId: Number(settings.get("nextPageId")) };
      this.#file = new ExtentFile(path.join(dataDir, EXTENTS_FILE), this.settings.chunkSizeBytes);
      // Slots past the committed high-water mark hold only data no commit points at (a crash cut it off).
      this.#file.truncateAfter(counters.extentHighWater);
      this.store = new PageStore(this.db, counters, Math.floor(this.settings.capacityBytes / this.settings.chunkSizeBytes));
      this.io = { store: this.store, file: this.#file, chunkSizeBytes: this.settings.chunkSizeBytes };
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** Writes a new SAN's settings into `dataDir` (made if missing) and opens it; refuses a directory holding one. */
  static initialize(dataDir: string, settings: SanSettings): DataDir {
    fs.mkdirSync(dataDir, { recursive: true });
    const lock = DirLock.acquire(dataDir);
    try {
      if (fs.existsSync(path.join(dataDir, META_FILE))) {
        throw new AlreadyExistsError(`The data directory ${dataDir} already holds a SAN; open it instead, or choose an empty directory.`);
      }
      const db = new MetaDb(path.join(dataDir, META_FILE));
      db.transaction(() => {
        const put = (key: string, value: string | number): void => void db.putSetting.run(key, String(value));
        put("formatVersion", FORMAT_VERSION);
        put("capacityBytes", settings.capacityBytes);
        put("chunkSizeBytes", settings.chunkSizeBytes);
        put("limits", JSON.stringify(settings.limits));
        put("extentHighWater", 0);
        put("nextPageId", 1);
        put("createdAt", settings.createdAtMs);
      });
      db.close();
    } catch (err) {
      lock.release();
      throw err;
    }
    return new DataDir(dataDir, lock);
  }

  /** Opens an existing SAN, returning to its last commit if its previous owner crashed. */
  static open(dataDir: string): DataDir {
    if (!fs.existsSync(path.join(dataDir, META_FILE))) {
      throw new NotFoundError(`No SAN exists in ${dataDir}; create one with 'esan san create --data-dir ${dataDir} --capacity SIZE'.`);
    }
    return new DataDir(dataDir, DirLock.acquire(dataDir));
  }

  /** Throws unless the session can take requests. */
  usable(): void {
    if (this.#closed) throw new FailedPreconditionError(`The SAN in ${this.path} is closed; open it again.`);
    if (this.#failure !== null) {
      throw new CorruptError(`The SAN in ${this.path} stopped after a failed update; reopen it to return to its last commit.`, {
        cause: this.#failure,
      });
    }
  }

  /** Runs a data-path mutation of `image` that returns its change in mapped chunks; an unexpected throw leaves memory ahead of disk, so the session stops. */
  mutate(image: ImageRecord, work: () => number): void {
    try {
      const mappedChange = work();
      image.mappedChunks += mappedChange;
    } catch (err) {
      if (!(err instanceof EsanError)) this.#failure = err;
      throw err;
    } finally {
      this.#dataDirty = true;
      this.#dirtyMaps.add(image);
    }
  }

  /** Records that an image's map or size changed, for the next commit to write. */
  mapChanged(image: ImageRecord): void {
    this.#dirtyMaps.add(image);
  }

  /** Forgets a deleted image's pending map change (its row goes in the same commit). */
  forget(image: ImageRecord): void {
    this.#dirtyMaps.delete(image);
  }

  /** fsync data (if any was written), then commit catalog changes, changed maps and counts in one transaction. */
  commit(catalogChanges?: () => void): void {
    try {
      if (this.#dataDirty) this.#syncData();
      this.db.transaction(() => {
        catalogChanges?.();
        for (const image of this.#dirtyMaps) this.db.updateImageMap.run(image.map.root, image.map.depth, image.mappedChunks, image.sizeBytes, image.id);
        this.store.writeDirty();
      });
    } catch (err) {
      this.#failure = err;
      throw new CorruptError(`Committing metadata in ${this.path} failed: ${(err as Error).message}. Reopen the SAN.`, { cause: err });
    }
    this.#dirtyMaps.clear();
    this.store.afterCommit();
  }

  /** Makes every write acknowledged so far durable, committing only when metadata changed. */
  flush(): void {
    if (this.store.dirty || this.#dirtyMaps.size > 0) this.commit();
    else if (this.#dataDirty) this.#syncData();
  }

  /** Commits everything and gives up the data directory. */
  close(): void {
    if (this.#closed) return;
    try {
      if (this.#failure === null) this.flush();
    } finally {
      this.#closed = true;
      this.#file.close();
      this.db.close();
      this.#lock.release();
    }
  }

  #syncData(): void {
    this.#file.sync();
    this.#dataDirty = false;
  }
}
