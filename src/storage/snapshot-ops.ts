// Planning and applying snapshot creation, single and grouped: idempotency, names, limits, then one shared commit.
import crypto from "node:crypto";
import type { GroupSnapshotRecord, ImageRecord, LoadedCatalog } from "./catalog.ts";
import { insertGroupSnapshot, insertImage } from "./catalog.ts";
import { share } from "./chunk-map.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "./errors.ts";
import { checkSnapshotCount, checkSnapshotRate, creationsInWindow } from "./limits.ts";
import type { MetaDb } from "./metadata.ts";
import { MAX_NAME_LENGTH, joinId, parseId, validateName } from "./names.ts";
import type { PageStore } from "./page-store.ts";
import type { GroupSnapshotInfo, SanLimits } from "./types.ts";

/** What a creation will do, decided before anything changes. */
export interface SnapshotPlan {
  /** A single snapshot of this name and source already exists: return it, change nothing. */
  existing?: ImageRecord;
  /** A group snapshot of this name and these volumes already exists. */
  existingGroup?: GroupSnapshotRecord;
  volumeGroup: string;
  /** Set for a group snapshot. */
  groupName?: string;
  members: { name: string; volume: ImageRecord }[];
}

/** The records one creation made, for the commit to persist. */
export interface CreatedSnapshots {
  snapshots: ImageRecord[];
  group: GroupSnapshotRecord | null;
  atMs: number;
}

type VolumeLookup = (id: string) => ImageRecord;
type VolumeGroupCheck = (name: string) => void;
type NewRecord = (fields: Pick<ImageRecord, "id" | "volumeGroup" | "name" | "groupSnapshotId">) => ImageRecord;

/** Snapshot bookkeeping over the in-memory catalog. */
export class SnapshotOps {
  readonly #catalog: LoadedCatalog;
  readonly #limits: SanLimits;
  readonly #now: () => number;

  constructor(catalog: LoadedCatalog, limits: SanLimits, now: () => number) {
    this.#catalog = catalog;
    this.#limits = limits;
    this.#now = now;
  }

  /** Plans `snapshot create`: returns the existing snapshot on a retry, else checks name and limits. */
  planSingle(request: { volumeGroup: string; name: string; sourceVolumeId: string }, volumeOf: VolumeLookup, checkVolumeGroup: VolumeGroupCheck): SnapshotPlan {
    validateName("volume group", request.volumeGroup);
    validateName("snapshot", request.name);
    checkVolumeGroup(request.volumeGroup);
    const volume = volumeOf(request.sourceVolumeId);
    const id = joinId(request.volumeGroup, request.name);
    const existing = this.#catalog.images.get(id);
    if (existing) {
      const sameSource =
        existing.kind === "snapshot" &&
        existing.source.kind !== "none" &&
        existing.source.sourceId === volume.id &&
        existing.source.sourceUniqueId === volume.uniqueId;
      if (sameSource) return { existing, volumeGroup: request.volumeGroup, members: [] };
      throw new AlreadyExistsError(
        `Cannot create snapshot ${id} of ${volume.id}: ${existing.kind === "snapshot" ? "a snapshot of another source" : "a volume"} of that name already exists. Choose another name.`,
      );
    }
    this.#checkLimits([volume]);
    return { volumeGroup: request.volumeGroup, members: [{ name: request.name, volume }] };
  }

  /** Plans `group-snapshot create`: all volumes in the group's volume group, all limits checked before any change. */
  planGroup(request: { volumeGroup: string; name: string; volumeIds: string[] }, volumeOf: VolumeLookup, checkVolumeGroup: VolumeGroupCheck): SnapshotPlan {
    validateName("volume group", request.volumeGroup);
    validateName("group snapshot", request.name);
    checkVolumeGroup(request.volumeGroup);
    const id = joinId(request.volumeGroup, request.name);
    if (!Array.isArray(request.volumeIds) || request.volumeIds.length === 0) {
      throw new InvalidArgumentError(`Cannot create group snapshot ${id}: name at least one volume.`);
    }
    if (new Set(request.volumeIds).size !== request.volumeIds.length) {
      throw new InvalidArgumentError(`Cannot create group snapshot ${id}: a volume is listed twice in ${request.volumeIds.join(",")}.`);
    }
    const volumes = request.volumeIds.map((volumeId) => {
      const volume = volumeOf(volumeId);
      if (volume.volumeGroup !== request.volumeGroup) {
        throw new InvalidArgumentError(
          `Cannot create group snapshot ${id}: volume ${volumeId} is not in volume group ${request.volumeGroup}; a group snapshot takes volumes of its own volume group.`,
        );
      }
      return volume;
    });
    const existingGroup = this.#catalog.groupSnapshots.get(id);
    if (existingGroup) {
      const sameVolumes = existingGroup.members.map((m) => m.sourceId).join(",") === request.volumeIds.join(",");
      if (sameVolumes) return { existingGroup, volumeGroup: request.volumeGroup, members: [] };
      throw new AlreadyExistsError(`Cannot create group snapshot ${id}: one of that name already exists with other volumes. Choose another name.`);
    }
    if (this.#catalog.images.has(id)) {
      throw new AlreadyExistsError(`Cannot create group snapshot ${id}: a volume or snapshot of that name already exists. Choose another name.`);
    }
    const members = volumes.map((volume) => ({ name: memberName(request.name, volume.name), volume }));
    for (const member of members) {
      const memberId = joinId(request.volumeGroup, member.name);
      if (this.#catalog.images.has(memberId)) {
        throw new AlreadyExistsError(`Cannot create group snapshot ${id}: its member snapshot name ${memberId} is already taken. Choose another group name.`);
      }
    }
    this.#checkLimits(volumes);
    return { volumeGroup: request.volumeGroup, groupName: request.name, members };
  }

  /** Makes the planned snapshots in memory: each shares its volume's map (O(1) whatever the size). */
  apply(plan: SnapshotPlan, store: PageStore, newRecord: NewRecord): CreatedSnapshots {
    const atMs = this.#now();
    const groupId = plan.groupName === undefined ? null : joinId(plan.volumeGroup, plan.groupName);
    const snapshots = plan.members.map(({ name, volume }) => {
      const record = newRecord({ id: joinId(plan.volumeGroup, name), volumeGroup: plan.volumeGroup, name, groupSnapshotId: groupId });
      record.sizeBytes = volume.sizeBytes;
      record.sectorSize = volume.sectorSize;
      record.source = { kind: "volume", sourceId: volume.id, sourceUniqueId: volume.uniqueId };
      record.map = share(store, volume.map);
      record.mappedChunks = volume.mappedChunks;
      this.#catalog.images.set(record.id, record);
      const creations = this.#catalog.creations.get(volume.uniqueId) ?? [];
      creations.push(atMs);
      this.#catalog.creations.set(volume.uniqueId, creations);
      return record;
    });
    let group: GroupSnapshotRecord | null = null;
    if (groupId !== null && plan.groupName !== undefined) {
      group = {
        id: groupId,
        volumeGroup: plan.volumeGroup,
        name: plan.groupName,
        createdAtMs: atMs,
        members: snapshots.map((s, i) => ({ snapshotId: s.id, sourceId: plan.members[i]!.volume.id })),
      };
      this.#catalog.groupSnapshots.set(groupId, group);
    }
    return { snapshots, group, atMs };
  }

  /** Writes the created records; call inside the commit transaction. */
  persist(db: MetaDb, created: CreatedSnapshots): void {
    for (const snapshot of created.snapshots) {
      insertImage(db, snapshot);
      if (snapshot.source.kind !== "none") db.addSnapshotCreation.run(snapshot.source.sourceUniqueId, created.atMs);
    }
    if (created.group) insertGroupSnapshot(db, created.group);
  }

  group(id: string): GroupSnapshotRecord {
    parseId("group snapshot", id);
    const group = this.#catalog.groupSnapshots.get(id);
    if (!group) throw new NotFoundError(`No group snapshot ${id} exists.`);
    return group;
  }

  groupInfo(group: GroupSnapshotRecord): GroupSnapshotInfo {
    return {
      id: group.id,
      volumeGroup: group.volumeGroup,
      name: group.name,
      createdAt: new Date(group.createdAtMs).toISOString(),
      snapshotIds: group.members.map((m) => m.snapshotId),
      sourceIds: group.members.map((m) => m.sourceId),
    };
  }

  /** The newest snapshot of the same source taken before `snapshot`, if one survives. */
  previousOfSource(snapshot: ImageRecord): ImageRecord | undefined {
    if (snapshot.source.kind === "none") return undefined;
    let previous: ImageRecord | undefined;
    for (const other of this.#catalog.images.values()) {
      if (other.kind !== "snapshot" || other.source.kind === "none") continue;
      if (other.source.sourceUniqueId !== snapshot.source.sourceUniqueId || other.seq >= snapshot.seq) continue;
      if (!previous || other.seq > previous.seq) previous = other;
    }
    return previous;
  }

  #checkLimits(volumes: ImageRecord[]): void {
    const now = this.#now();
    for (const volume of volumes) {
      let held = 0;
      for (const image of this.#catalog.images.values()) {
        if (image.kind === "snapshot" && image.source.kind !== "none" && image.source.sourceUniqueId === volume.uniqueId) held++;
      }
      checkSnapshotCount(volume.id, held, 1, this.#limits);
      const recent = creationsInWindow(this.#catalog.creations.get(volume.uniqueId) ?? [], now, this.#limits);
      this.#catalog.creations.set(volume.uniqueId, recent);
      checkSnapshotRate(volume.id, recent, now, this.#limits);
    }
  }
}

/** `GROUP-VOLUME` when it fits in a name, else `GROUP-` and a hash of the volume name: stable across retries. */
export function memberName(groupName: string, volumeName: string): string {
  const plain = `${groupName}-${volumeName}`;
  if (plain.length <= MAX_NAME_LENGTH) return plain;
  const hash = crypto.createHash("sha256").update(volumeName).digest("hex").slice(0, 12);
  return `${groupName.slice(0, MAX_NAME_LENGTH - hash.length - 1).replace(/-+$/, "")}-${hash}`;
}
