// The durable tier: disk snapshots exported to a DurableStore, families, limits, diffs, restores and copies.
import path from "node:path";
import { AlreadyExistsError, EsanError, FailedPreconditionError, InvalidArgumentError, NotFoundError, StoreUnavailableError } from "../errors.ts";
import { checkSnapshotCount, checkSnapshotRate } from "../limits.ts";
import { validateName } from "../names.ts";
import { coalesceChunks } from "../san-support.ts";
import type { DiffResult, DiskSnapshotInfo, SectorSize } from "../types.ts";
import { runExport } from "./export-job.ts";
import { Hydration } from "./hydration.ts";
import { ChainIndex } from "./chain-index.ts";
import { type MemberManifest, changedChunksOf, memberKeys } from "./manifest.ts";
import { foldIntoSuccessor } from "./fold.ts";
import { type DiskSnapshotRow, type DurableHost, DurableRows, type HydrationRow, type PinInfo } from "./records.ts";
import type { DurableStore } from "./store.ts";

/** Request of an export. */
export interface ExportRequest {
  name: string;
  /** `VG/SNAPSHOT` or `VG/VOLUME` (its current state). */
  sourceId: string;
  /** Directory of the store (default: DATA_DIR/durable-store). */
  storeDir?: string;
}

/**
 * A hydration as the tier tracks it: `ready` once its chain is loaded, `finished` when its current run completes
 * or stops, `error` when that run failed.
 */
interface HydrationEntry {
  hydration: Hydration | null;
  ready: Promise<Hydration | null>;
  finished: Promise<void>;
  error?: Error;
}

/** The durable tier of one SAN. Jobs run in the background; their progress lives in the SAN's metadata. */
export class DurableTier {
  readonly #host: DurableHost;
  readonly #rows: DurableRows;
  readonly #defaultStoreDir: string;
  readonly #stores = new Map<string, DurableStore>();
  /** The latest attempt of each export by name; it never rejects (its failure goes to #jobErrors). */
  readonly #jobs = new Map<string, Promise<void>>();
  /** Attempts in flight: one at a time per member, whoever asks for it. */
  readonly #running = new Map<string, Promise<void>>();
  readonly #jobErrors = new Map<string, Error>();
  readonly #hydrations = new Map<string, HydrationEntry>();
  /** Members whose delete (an async fold) is under way: no restore may start from a chain holding one. */
  readonly #deleting = new Set<string>();
  #closed = false;

  constructor(host: DurableHost) {
    this.#host = host;
    this.#rows = new DurableRows(host.db);
    this.#defaultStoreDir = path.join(host.dataDir, "durable-store");
  }

  /** Restarts exports and hydrations that a previous process left unfinished. */
  resume(): void {
    for (const row of this.#rows.all()) if (row.state === "exporting") this.#startJob(row.name);
    for (const row of this.#rows.hydrations()) if (row.state === "hydrating") this.startHydration(row);
  }

  /** Stops background work; jobs pick up again from their persisted progress on the next open. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#hydrations.values()) entry.hydration?.stop();
  }

  /** Starts exporting a snapshot or a volume's current state. Idempotent by name; limits apply to new members. */
  export(request: ExportRequest): DiskSnapshotInfo {
    validateName("disk snapshot", request.name);
    const source = this.#host.imageSource(request.sourceId);
    const existing = this.#rows.get(request.name);
    if (existing) {
      if (existing.exported_from === request.sourceId && existing.family === source.family) {
        // The same request again: a retry, which resumes an export that a store failure stopped.
        if (existing.state === "exporting" && !this.#running.has(existing.name)) this.#startJob(existing.name);
        return this.#info(existing);
      }
      throw new AlreadyExistsError(`Cannot export disk snapshot ${request.name}: one of that name already exists from ${existing.exported_from}. Choose another name.`);
    }
    const family = this.#rows.family(source.family);
    this.#refuseWhileFamilyDeletes(source.family, `export disk snapshot ${request.name}`);
    const limits = this.#host.limits;
    checkSnapshotCount(source.sourceResourceId, family.length, 1, { ...limits, maxSnapshotsPerVolume: limits.maxDiskSnapshotsPerSource });
    const rateKey = `disk:${source.family}`;
    const now = this.#host.now();
    checkSnapshotRate(source.sourceResourceId, this.#rows.creations(rateKey, now - limits.snapshotRateWindowMs), now, limits);

    const previous = family[family.length - 1];
    const storeDir = path.resolve(request.storeDir ?? previous?.store ?? this.#defaultStoreDir);
    if (previous && storeDir !== previous.store) {
      throw new InvalidArgumentError(
        `Cannot export disk snapshot ${request.name} to ${storeDir}: its family (source ${source.sourceResourceId}) lives in ${previous.store}, and a family stays in one store.`,
      );
    }
    // The pin and the row that owns it commit together: a crash leaves both or neither, so no pin leaks.
    let row!: DiskSnapshotRow;
    this.#host.pin(request.sourceId, (pin) => {
      row = this.#newRow(request, source, previous, pin, storeDir, now);
      this.#rows.insert(row);
      this.#rows.addCreation(rateKey, now);
    });
    this.#startJob(row.name);
    return this.#info(row);
  }

  #newRow(
    request: ExportRequest,
    source: { sourceResourceId: string; family: string },
    previous: DiskSnapshotRow | undefined,
    pin: PinInfo,
    storeDir: string,
    now: number,
  ): DiskSnapshotRow {
    const chunks = this.#host.changedChunks(pin.pinId, previous?.pin_id ?? null);
    return {
      name: request.name,
      member_id: this.#host.newUniqueId(),
      family: source.family,
      source_resource_id: source.sourceResourceId,
      exported_from: request.sourceId,
      // Without the previous member's pinned state there is nothing to diff against: the member is full.
      previous_member: previous?.pin_id ? previous.member_id : null,
      seq: this.#rows.nextSeq(),
      size_bytes: pin.sizeBytes,
      sector_size: pin.sectorSize,
      chunk_size: this.#host.chunkSizeBytes,
      state: "exporting",
      pin_id: pin.pinId,
      base_pin_id: previous?.pin_id ?? null,
      total_chunks: chunks.length,
      done_chunks: 0,
      used_bytes: 0,
      store: storeDir,
      manifest_gen: 0,
      created_at: now,
    };
  }

  /** Resolves when the export is complete (or rejects with the reason it stopped). */
  async wait(name: string): Promise<DiskSnapshotInfo> {
    this.#row(name);
    await this.#jobs.get(name);
    if (this.#closed) {
      throw new FailedPreconditionError(`The SAN closed before the export of disk snapshot ${name} finished; it resumes when the SAN is opened again.`);
    }
    const error = this.#jobErrors.get(name);
    if (error !== undefined) throw error;
    return this.show(name);
  }

  show(name: string): DiskSnapshotInfo {
    return this.#info(this.#row(name));
  }

  /** Disk snapshots, oldest first; with `sourceId`, only those of that volume's current family. */
  list(options: { sourceId?: string } = {}): DiskSnapshotInfo[] {
    const rows = this.#rows.all();
    if (options.sourceId === undefined) return rows.map((r) => this.#info(r));
    const family = this.#host.imageSource(options.sourceId).family;
    return rows.filter((r) => r.family === family).map((r) => this.#info(r));
  }

  /** Deletes a member, folding its delta into the next member so every other member stays restorable. */
  async delete(name: string): Promise<void> {
    const row = this.#row(name);
    if (row.state === "exporting") {
      throw new FailedPreconditionError(`Cannot delete disk snapshot ${name}: its export is ${this.#percent(row)}% done. Wait for it to finish.`);
    }
    for (const hydration of this.#rows.hydrations()) {
      if (hydration.state !== "hydrating" || !this.#hydrations.has(hydration.volume_id)) continue;
      const source = this.#rows.get(hydration.disk_snapshot);
      if (source && this.#chain(source).some((member) => member.name === name)) {
        const percent = this.hydrationStatus(hydration.volume_id)?.completionPercent ?? hydration.completion_percent;
        throw new FailedPreconditionError(
          `Cannot delete disk snapshot ${name}: volume ${hydration.volume_id} is still hydrating from it (${percent}%). Wait for hydration to complete.`,
        );
      }
    }
    const successor = this.#rows.family(row.family).find((r) => r.previous_member === row.member_id);
    if (successor?.state === "exporting") {
      throw new FailedPreconditionError(`Cannot delete disk snapshot ${name}: the next member ${successor.name} is still exporting against it. Wait for it to finish.`);
    }
    this.#refuseWhileFamilyDeletes(row.family, `delete disk snapshot ${name}`);
    // Set before the first await: a restore checked after this point sees the delete and is refused.
    this.#deleting.add(name);
    try {
      await this.#deleteMember(row, successor);
    } finally {
      this.#deleting.delete(name);
    }
  }

  async #deleteMember(row: DiskSnapshotRow, successor: DiskSnapshotRow | undefined): Promise<void> {
    const name = row.name;
    const store = this.#store(row.store);
    if (successor) await foldIntoSuccessor(this.#rows, store, this.#store(successor.store), row, successor, await this.#manifest(row), await this.#manifest(successor));
    // The row and its pin go in one commit: a crash never leaves a pin nothing references.
    if (row.pin_id !== null) this.#host.unpin(row.pin_id, () => this.#rows.delete(name));
    else this.#rows.transaction(() => this.#rows.delete(name));
    for (const key of await store.list(memberKeys.prefix(row.family, row.member_id))) await store.delete(key);
  }

  /** Block-level changes between two members of one family, as coalesced byte ranges. */
  async diff(nameA: string, nameB: string): Promise<DiffResult> {
    const [a, b] = [this.#readyRow(nameA), this.#readyRow(nameB)];
    if (a.family !== b.family) {
      throw new InvalidArgumentError(`Cannot diff disk snapshots ${nameA} and ${nameB}: they belong to different families (sources ${a.source_resource_id} and ${b.source_resource_id}).`);
    }
    const [older, newer] = a.seq <= b.seq ? [a, b] : [b, a];
    // Usually the older member lies on the newer one's chain, and the members after it hold every change. A full
    // member in between (exported after the family lost its base) breaks the chain: then every chunk either chain
    // lists may differ, a superset that never misses a change.
    const newerChain = this.#chain(newer);
    const onChain = newerChain.some((member) => member.member_id === older.member_id);
    const members = onChain ? newerChain.filter((member) => member.seq > older.seq) : [...this.#chain(older), ...newerChain];
    const changed = new Set<number>();
    for (const member of members) {
      for (const chunk of changedChunksOf(await this.#manifest(member))) changed.add(chunk);
    }
    const chunks = [...changed].sort((x, y) => x - y);
    const ranges = coalesceChunks(chunks, newer.chunk_size, Math.max(a.size_bytes, b.size_bytes));
    return { chunkSizeBytes: newer.chunk_size, changedBytes: ranges.reduce((sum, r) => sum + r.length, 0), ranges };
  }

  /** Checks that a ready disk snapshot can be restored into a volume of this size and sector size. */
  checkRestore(name: string, sizeBytes: number, sectorSize: SectorSize | undefined): { sectorSize: SectorSize; memberId: string } {
    const row = this.#readyRow(name);
    const deleting = this.#chain(row).find((member) => this.#deleting.has(member.name));
    if (deleting) {
      throw new FailedPreconditionError(`Cannot restore disk snapshot ${name} now: ${deleting.name}, which it reads from, is being deleted. Retry in a moment.`);
    }
    if (sectorSize !== undefined && sectorSize !== row.sector_size) {
      throw new InvalidArgumentError(
        `Cannot restore disk snapshot ${name} into a ${sectorSize}-byte-sector volume: it was taken of a ${row.sector_size}-byte-sector volume, and sector size is inherited.`,
      );
    }
    if (sizeBytes < row.size_bytes) {
      throw new FailedPreconditionError(`Cannot restore disk snapshot ${name} (${row.size_bytes} bytes) into ${sizeBytes} bytes: the volume must be at least as large.`);
    }
    return { sectorSize: row.sector_size as SectorSize, memberId: row.member_id };
  }

  /** The hydration record of a volume about to be restored from a disk snapshot. */
  planHydration(volumeId: string, name: string): HydrationRow {
    return { volume_id: volumeId, disk_snapshot: name, state: "hydrating", cursor: 0, total_chunks: 0, completion_percent: 0 };
  }

  /** Stores a hydration record; the SAN calls it inside the commit that creates the volume. */
  recordHydration(row: HydrationRow): void {
    this.#rows.putHydration(row);
  }

  /** The hydration of a volume, once its chain is loaded; null when the volume is not hydrating. */
  async hydrationOf(volumeId: string): Promise<Hydration | null> {
    const entry = this.#hydrations.get(volumeId);
    if (!entry) return null;
    const hydration = await entry.ready;
    return hydration?.state === "hydrating" ? hydration : null;
  }

  /**
   * Resolves when a volume's hydration has completed; at once for a volume not hydrating. Rejects when it stopped
   * on a failure (the store unreachable, say); waiting again resumes it from its persisted progress.
   */
  async hydrated(volumeId: string): Promise<void> {
    const entry = this.#hydrations.get(volumeId);
    if (!entry) return;
    if (entry.error !== undefined && !this.#closed && entry.hydration) this.#runHydration(entry, entry.hydration);
    await entry.finished;
    if (entry.error !== undefined) throw entry.error;
  }

  /** True while a volume reads through to a disk snapshot. */
  isHydrating(volumeId: string): boolean {
    const entry = this.#hydrations.get(volumeId);
    return entry !== undefined && (entry.hydration === null || entry.hydration.state === "hydrating");
  }

  /** `{state, completionPercent}` of a restored volume, or null for a volume not restored from a disk snapshot. */
  hydrationStatus(volumeId: string): { state: "hydrating" | "complete"; completionPercent: number; diskSnapshot: string } | null {
    const entry = this.#hydrations.get(volumeId);
    if (entry?.hydration) return { state: entry.hydration.state, completionPercent: entry.hydration.completionPercent, diskSnapshot: entry.hydration.diskSnapshot };
    const row = this.#rows.hydrations().find((r) => r.volume_id === volumeId);
    return row ? { state: row.state, completionPercent: row.completion_percent, diskSnapshot: row.disk_snapshot } : null;
  }

  /** Stops the hydration of a volume being deleted. */
  stopHydration(volumeId: string): void {
    this.#hydrations.get(volumeId)?.hydration?.stop();
    this.#hydrations.delete(volumeId);
  }

  /** Deletes a volume's hydration record; the SAN calls it inside the commit that deletes the volume. */
  forgetHydration(volumeId: string): void {
    this.#rows.deleteHydration(volumeId);
  }

  /**
   * Sends a family to another SAN's tier: members the target lacks are copied whole, which is the first member
   * in full and later ones as deltas; members it already has are skipped. Returns the bytes moved.
   */
  async copyFamily(family: string, target: DurableTier): Promise<{ membersCopied: string[]; bytesMoved: number }> {
    const members = this.#rows.family(family).filter((r) => r.state === "ready");
    if (members.length === 0) throw new NotFoundError(`No ready disk snapshot of family ${family} exists to copy.`);
    const membersCopied: string[] = [];
    let bytesMoved = 0;
    for (const member of members) {
      if (target.#rows.byMember(member.member_id)) continue;
      if (target.#rows.get(member.name)) {
        throw new AlreadyExistsError(`Cannot copy disk snapshot ${member.name}: the target SAN has another disk snapshot of that name.`);
      }
      const from = this.#store(member.store);
      const to = target.#store(target.#defaultStoreDir);
      const manifestKey = memberKeys.manifest(member.family, member.member_id, member.manifest_gen);
      const manifest = await this.#manifest(member);
      // Segments first, the manifest last: the copy exists in the target store only when it is whole.
      for (const key of [...manifest.segments.map((s) => s.key), manifestKey]) {
        const data = await from.get(key);
        await to.put(key, data);
        bytesMoved += data.byteLength;
      }
      target.#rows.insert({ ...member, seq: target.#rows.nextSeq(), pin_id: null, base_pin_id: null, store: to.location });
      membersCopied.push(member.name);
    }
    return { membersCopied, bytesMoved };
  }

  // ---- internals ----

  /** A delete folds into its neighbour and moves the family's base: nothing else in the family may run meanwhile. */
  #refuseWhileFamilyDeletes(family: string, what: string): void {
    const busy = this.#rows.family(family).find((member) => this.#deleting.has(member.name));
    if (busy) throw new FailedPreconditionError(`Cannot ${what} now: disk snapshot ${busy.name} of the same family is being deleted. Retry in a moment.`);
  }

  /** Starts an attempt at an export in the background; its outcome is what `wait` reports. */
  #startJob(name: string): void {
    this.#jobErrors.delete(name);
    const job = this.#attempt(name).catch((err: unknown) => {
      if (!this.#closed) this.#jobErrors.set(name, asError(err));
    });
    this.#jobs.set(name, job);
  }

  /**
   * Runs an export to its end, once at a time per member. A delta builds on its previous member, so that member
   * is finished first (it may still be exporting, or stopped by a store failure): a member is never ready, and
   * never releases its base, before the member it builds on is ready.
   */
  #attempt(name: string): Promise<void> {
    const running = this.#running.get(name);
    if (running) return running;
    const attempt = (async () => {
      const row = this.#rows.get(name);
      if (!row || row.state !== "exporting") return;
      const previous = row.previous_member === null ? undefined : this.#rows.byMember(row.previous_member);
      if (previous?.state === "exporting") {
        try {
          await this.#attempt(previous.name);
        } catch (err) {
          throw new StoreUnavailableError(
            `The export of disk snapshot ${name} waits for ${previous.name}, which it builds on, and that export stopped: ${messageOf(err)}`,
            { cause: err },
          );
        }
      }
      if (this.#closed) return;
      try {
        await runExport(this.#host, this.#rows, this.#store(row.store), name, () => this.#closed);
      } catch (err) {
        if (err instanceof EsanError) throw err;
        throw new StoreUnavailableError(
          `The export of disk snapshot ${name} stopped at ${this.#percent(this.#row(name))}%: its store failed (${messageOf(err)}). ` +
            "Export it again with the same name and source to resume; it also resumes when the SAN is opened again.",
          { cause: err },
        );
      }
    })().finally(() => this.#running.delete(name));
    this.#running.set(name, attempt);
    return attempt;
  }

  /** Starts the hydration of a restored volume (new, or left unfinished by a previous process). */
  startHydration(row: HydrationRow): void {
    const entry: HydrationEntry = { hydration: null, ready: Promise.resolve(null), finished: Promise.resolve() };
    let finish!: () => void;
    entry.finished = new Promise<void>((resolve) => (finish = resolve));
    entry.ready = (async () => {
      const snapshot = this.#row(row.disk_snapshot);
      const chain = await Promise.all(this.#chain(snapshot).map((member) => this.#manifest(member)));
      const index = new ChainIndex(chain, Math.ceil(snapshot.size_bytes / snapshot.chunk_size));
      // The volume may have been deleted (and its name reused) while the chain loaded: only the entry that is still
      // registered for this volume may start writing into it.
      if (this.#closed || this.#hydrations.get(row.volume_id) !== entry) return null;
      const hydration = new Hydration(this.#host, this.#rows, { ...row, total_chunks: index.coveredChunks }, {
        store: this.#store(snapshot.store),
        index,
        chunkSizeBytes: snapshot.chunk_size,
      });
      entry.hydration = hydration;
      this.#runHydration(entry, hydration, finish);
      return hydration;
    })();
    entry.ready.catch((err: unknown) => {
      entry.error = asError(err);
      finish();
    });
    this.#hydrations.set(row.volume_id, entry);
  }

  /**
   * Runs a hydration to its end. A failure leaves the volume reading through to the store (its data stays
   * right) and is kept for `hydrated` to report; the next wait runs it again from its persisted cursor.
   */
  #runHydration(entry: HydrationEntry, hydration: Hydration, finish?: () => void): void {
    let done = finish;
    if (!done) entry.finished = new Promise<void>((resolve) => (done = resolve));
    entry.error = undefined;
    hydration
      .run()
      .catch((err: unknown) => {
        if (this.#closed || !this.#host.volumeExists(hydration.volumeId)) return;
        entry.error = new StoreUnavailableError(
          `The hydration of volume ${hydration.volumeId} from disk snapshot ${hydration.diskSnapshot} stopped at ${hydration.completionPercent}%: ` +
            `reading the store failed (${messageOf(err)}). Reads still come from the store; wait for the hydration again to resume it.`,
          { cause: err },
        );
      })
      .finally(() => done!());
  }

  /** The members a restore of `row` reads, oldest (the full one) first. */
  #chain(row: DiskSnapshotRow): DiskSnapshotRow[] {
    const chain = [row];
    let current = row;
    while (current.previous_member !== null) {
      const previous = this.#rows.byMember(current.previous_member);
      if (!previous) break;
      chain.unshift(previous);
      current = previous;
    }
    return chain;
  }

  async #manifest(row: DiskSnapshotRow): Promise<MemberManifest> {
    const data = await this.#store(row.store).get(memberKeys.manifest(row.family, row.member_id, row.manifest_gen));
    return JSON.parse(data.toString("utf8")) as MemberManifest;
  }

  #store(dir: string): DurableStore {
    let store = this.#stores.get(dir);
    if (!store) {
      store = this.#host.openStore(dir);
      this.#stores.set(dir, store);
    }
    return store;
  }

  #row(name: string): DiskSnapshotRow {
    const row = this.#rows.get(name);
    if (!row) throw new NotFoundError(`No disk snapshot ${name} exists.`);
    return row;
  }

  #readyRow(name: string): DiskSnapshotRow {
    const row = this.#row(name);
    if (row.state !== "ready") {
      throw new FailedPreconditionError(`Disk snapshot ${name} is not ready, ${this.#percent(row)}% copied. Wait for the export to complete.`);
    }
    return row;
  }

  #percent(row: DiskSnapshotRow): number {
    if (row.state === "ready") return 100;
    return Math.min(99, Math.floor((row.done_chunks * 100) / Math.max(1, row.total_chunks)));
  }

  #info(row: DiskSnapshotRow): DiskSnapshotInfo {
    return {
      name: row.name,
      memberId: row.member_id,
      sourceResourceId: row.source_resource_id,
      sourceUniqueId: row.family,
      exportedFrom: row.exported_from,
      incremental: row.previous_member !== null,
      previousMemberId: row.previous_member,
      sizeBytes: row.size_bytes,
      usedBytes: row.used_bytes,
      sectorSize: row.sector_size as SectorSize,
      completionPercent: this.#percent(row),
      createdAt: new Date(row.created_at).toISOString(),
      store: row.store,
    };
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
