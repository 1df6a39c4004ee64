// CSI Controller, snapshot half: instant snapshots inside the SAN (`tier: instant`, the default) and disk snapshots
// exported to the durable tier (`tier: durable`, ready_to_use=false until the export reaches 100%). Both are
// idempotent by name across tiers and volume groups, so a retry can never make a second snapshot.
import { status } from "@grpc/grpc-js";
import type { SanClient } from "../san/san-client.ts";
import type { DiskSnapshotInfo, SnapshotInfo } from "../storage/types.ts";
import { CsiError, invalidArgument } from "./errors.ts";
import { checkCsiString, diskSnapshotId, engineName, parseEngineId, parseSnapshotId } from "./ids.ts";
import { allPages, diskSnapshotMessage, ignoreNotFound, instantSnapshotMessage, notFound, orNull } from "./messages.ts";
import { snapshotParameters } from "./parameters.ts";
import { unary, type CsiMethods } from "./rpc.ts";
import type { CreateSnapshotRequest, ListSnapshotsRequest, SnapshotIdRequest } from "./requests.ts";

/** A snapshot of either tier, as listed. */
type AnySnapshot = { id: string; message: Record<string, unknown>; sourceVolumeId: string };

const TOKEN_PREFIX = "csi-snapshots1:";

function encodeToken(lastId: string): string {
  return Buffer.from(TOKEN_PREFIX + lastId).toString("base64url");
}

/** The id a token continues after; ABORTED for a token esan did not issue (what the spec asks for). */
function decodeToken(token: string): string {
  const text = Buffer.from(token, "base64url").toString("utf8");
  if (!text.startsWith(TOKEN_PREFIX)) {
    throw new CsiError(status.ABORTED, `The starting_token '${token}' was not issued by esan's ListSnapshots; list again from the start.`);
  }
  return text.slice(TOKEN_PREFIX.length);
}

function instant(snapshot: SnapshotInfo): AnySnapshot {
  return { id: snapshot.id, message: instantSnapshotMessage(snapshot), sourceVolumeId: snapshot.sourceId };
}

function durable(disk: DiskSnapshotInfo): AnySnapshot {
  return { id: diskSnapshotId(disk.name), message: diskSnapshotMessage(disk), sourceVolumeId: disk.sourceResourceId };
}

/** The Controller service's snapshot handlers. */
export function controllerSnapshotMethods(san: SanClient): CsiMethods {
  /** Instant snapshots named `name` in any volume group: snapshot names are unique per CSI driver, not per group. */
  async function instantNamed(name: string): Promise<SnapshotInfo[]> {
    const all = await allPages((startingToken) => san.listSnapshots(startingToken === undefined ? {} : { startingToken }));
    return all.filter((snapshot) => snapshot.name === name);
  }

  async function getAny(snapshotId: string): Promise<AnySnapshot | null> {
    const ref = parseSnapshotId(snapshotId);
    if (!ref) return null;
    if (ref.tier === "durable") {
      const disk = await orNull(san.getDiskSnapshot(ref.name));
      return disk && durable(disk);
    }
    const snapshot = await orNull(san.getSnapshot(ref.id));
    return snapshot && instant(snapshot);
  }

  function alreadyExists(csiName: string, existingId: string, sourceVolumeId: string): CsiError {
    return new CsiError(
      status.ALREADY_EXISTS,
      `A snapshot named '${csiName}' already exists (${existingId}) with another source or tier than ${sourceVolumeId}; use another name.`,
    );
  }

  return {
    CreateSnapshot: unary<CreateSnapshotRequest>({
      mutating: true,
      validate: (r) => {
        checkCsiString("name", r.name);
        checkCsiString("source_volume_id", r.sourceVolumeId);
        snapshotParameters(r.parameters);
      },
      lockKeys: (r) => [`snapshot-name:${r.name}`],
      handle: async (r) => {
        const { tier } = snapshotParameters(r.parameters);
        const source = parseEngineId(r.sourceVolumeId);
        if (!source) throw notFound("volume", r.sourceVolumeId);
        const name = engineName(r.name);
        const disk = await orNull(san.getDiskSnapshot(name));
        const sameGroup = await orNull(san.getSnapshot(`${source.volumeGroup}/${name}`));
        if (tier === "durable") {
          if (sameGroup) throw alreadyExists(r.name, sameGroup.id, r.sourceVolumeId);
          if (disk) {
            if (disk.sourceResourceId !== r.sourceVolumeId) throw alreadyExists(r.name, diskSnapshotId(disk.name), r.sourceVolumeId);
            return { snapshot: diskSnapshotMessage(disk) };
          }
          const elsewhere = await instantNamed(name);
          if (elsewhere[0]) throw alreadyExists(r.name, elsewhere[0].id, r.sourceVolumeId);
          // Exporting the volume itself pins its current state at once; no instant snapshot is left behind.
          const started = await san.exportDiskSnapshot({ name, sourceId: r.sourceVolumeId });
          return { snapshot: diskSnapshotMessage(started) };
        }
        if (disk) throw alreadyExists(r.name, diskSnapshotId(disk.name), r.sourceVolumeId);
        if (sameGroup) {
          if (sameGroup.sourceId !== r.sourceVolumeId) throw alreadyExists(r.name, sameGroup.id, r.sourceVolumeId);
          return { snapshot: instantSnapshotMessage(sameGroup) };
        }
        const elsewhere = await instantNamed(name);
        if (elsewhere[0]) throw alreadyExists(r.name, elsewhere[0].id, r.sourceVolumeId);
        const created = await san.createSnapshot({ volumeGroup: source.volumeGroup, name, sourceVolumeId: r.sourceVolumeId });
        return { snapshot: instantSnapshotMessage(created) };
      },
    }),

    DeleteSnapshot: unary<SnapshotIdRequest>({
      mutating: true,
      validate: (r) => void checkCsiString("snapshot_id", r.snapshotId),
      lockKeys: (r) => [`snapshot:${r.snapshotId}`],
      handle: async (r) => {
        const ref = parseSnapshotId(r.snapshotId);
        if (!ref) return {};
        if (ref.tier === "durable") {
          await ignoreNotFound(san.deleteDiskSnapshot(ref.name));
          return {};
        }
        const snapshot = await orNull(san.getSnapshot(ref.id));
        if (!snapshot) return {};
        if (snapshot.groupSnapshotId) {
          throw invalidArgument(
            `Cannot delete snapshot ${ref.id} on its own: it is a member of group snapshot ${snapshot.groupSnapshotId}. Delete the group snapshot instead.`,
          );
        }
        await ignoreNotFound(san.deleteSnapshot(ref.id));
        return {};
      },
    }),

    GetSnapshot: unary<SnapshotIdRequest>({
      validate: (r) => void checkCsiString("snapshot_id", r.snapshotId),
      handle: async (r) => {
        const found = await getAny(r.snapshotId);
        if (!found) throw notFound("snapshot", r.snapshotId);
        return { snapshot: found.message };
      },
    }),

    ListSnapshots: unary<ListSnapshotsRequest>({
      validate: (r) => {
        if (r.maxEntries < 0) throw invalidArgument(`max_entries must not be negative; got ${r.maxEntries}.`);
      },
      handle: async (r) => {
        const after = r.startingToken ? decodeToken(r.startingToken) : null;
        let all: AnySnapshot[];
        if (r.snapshotId) {
          const found = await getAny(r.snapshotId);
          all = found && (!r.sourceVolumeId || found.sourceVolumeId === r.sourceVolumeId) ? [found] : [];
        } else if (r.sourceVolumeId && !parseEngineId(r.sourceVolumeId)) {
          all = [];
        } else {
          const filter = r.sourceVolumeId ? { sourceVolumeId: r.sourceVolumeId } : {};
          const instants = await allPages((startingToken) => san.listSnapshots({ ...filter, ...(startingToken === undefined ? {} : { startingToken }) }));
          const disks = await san.listDiskSnapshots(r.sourceVolumeId ? { sourceId: r.sourceVolumeId } : {});
          all = [...instants.map(instant), ...disks.map(durable)];
        }
        all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        const start = after === null ? 0 : all.findIndex((s) => s.id > after);
        const rest = start < 0 ? [] : all.slice(start);
        const page = r.maxEntries > 0 ? rest.slice(0, r.maxEntries) : rest;
        const last = page[page.length - 1];
        return {
          entries: page.map((s) => ({ snapshot: s.message })),
          nextToken: page.length < rest.length && last ? encodeToken(last.id) : "",
        };
      },
    }),
  };
}
