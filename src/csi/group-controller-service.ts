// CSI GroupController: crash-consistent snapshots of several volumes, taken in one engine commit. With the class
// parameter `fsfreeze: "true"`, the members' mounted filesystems are frozen around the commit through a
// FilesystemFreezer (the seam to the node side), and always thawed, even when the snapshot fails.
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { SanClient } from "../san/san-client.ts";
import type { GroupSnapshotInfo } from "../storage/types.ts";
import { CsiError, invalidArgument } from "./errors.ts";
import { checkCsiString, engineName, parseEngineId } from "./ids.ts";
import { ignoreNotFound, instantSnapshotMessage, notFound, orNull, timestamp } from "./messages.ts";
import { groupSnapshotParameters } from "./parameters.ts";
import { answer, unary, type CsiMethods } from "./rpc.ts";
import type { CreateVolumeGroupSnapshotRequest, GroupSnapshotIdRequest } from "./requests.ts";

/**
 * Freezes the mounted filesystems of volumes on whichever nodes mount them. `freeze` resolves with the thaw once every
 * filesystem is frozen; if it cannot freeze them all it thaws what it froze and throws. The thaw must be called
 * whatever happens after a successful freeze.
 */
export interface FilesystemFreezer {
  freeze(volumeIds: readonly string[]): Promise<() => Promise<void>>;
}

/** The freezer of a controller that cannot reach node filesystems: asking for fsfreeze is refused, never ignored. */
export const NO_FREEZER: FilesystemFreezer = {
  freeze: () => {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      "The group snapshot class asks for fsfreeze, but this esan controller cannot reach the nodes' filesystems; take the group snapshot without fsfreeze (it is crash-consistent) or run the driver with a node freezer.",
    );
  },
};

/** Options of groupControllerService. */
export interface GroupControllerOptions {
  san: SanClient;
  logger: Logger;
  /** How fsfreeze reaches the nodes (default NO_FREEZER). */
  freezer?: FilesystemFreezer;
}

/** The only group controller capability there is, and esan has it. */
export const GROUP_CONTROLLER_CAPABILITIES = [{ rpc: { type: "CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT" } }];

/** Throws INVALID_ARGUMENT when the caller's snapshot_ids do not match the group's members (spec: "list mismatch"). */
function checkSnapshotIds(group: GroupSnapshotInfo, given: readonly string[] | undefined): void {
  if (!given || given.length === 0) return;
  const members = [...group.snapshotIds].sort().join(",");
  if ([...given].sort().join(",") !== members) {
    throw invalidArgument(`The snapshot_ids ${given.join(", ")} do not match the members of group snapshot ${group.id}: ${group.snapshotIds.join(", ")}.`);
  }
}

/** The GroupController service's handlers. */
export function groupControllerService(options: GroupControllerOptions): CsiMethods {
  const san = options.san;
  const freezer = options.freezer ?? NO_FREEZER;

  async function groupMessage(group: GroupSnapshotInfo): Promise<Record<string, unknown>> {
    const snapshots = await Promise.all(group.snapshotIds.map((id) => san.getSnapshot(id)));
    return { groupSnapshotId: group.id, snapshots: snapshots.map(instantSnapshotMessage), creationTime: timestamp(group.createdAt), readyToUse: true };
  }

  return {
    GroupControllerGetCapabilities: answer(() => ({ capabilities: GROUP_CONTROLLER_CAPABILITIES })),

    CreateVolumeGroupSnapshot: unary<CreateVolumeGroupSnapshotRequest>({
      mutating: true,
      validate: (r) => {
        checkCsiString("name", r.name);
        if (!Array.isArray(r.sourceVolumeIds) || r.sourceVolumeIds.length === 0) {
          throw invalidArgument("The request field source_volume_ids is required: name at least one volume.");
        }
        for (const id of r.sourceVolumeIds as unknown[]) checkCsiString("source_volume_ids", id);
        groupSnapshotParameters(r.parameters);
      },
      lockKeys: (r) => [`group-snapshot-name:${r.name}`],
      handle: async (r, context) => {
        const { fsfreeze } = groupSnapshotParameters(r.parameters);
        // Sorted, so a retry that lists the volumes in another order is the same request to the engine.
        const volumeIds = [...new Set(r.sourceVolumeIds)].sort();
        const groups = new Set<string>();
        for (const id of volumeIds) {
          const parsed = parseEngineId(id);
          if (!parsed) throw notFound("volume", id);
          groups.add(parsed.volumeGroup);
        }
        if (groups.size > 1) {
          throw new CsiError(
            status.FAILED_PRECONDITION,
            `Cannot snapshot ${volumeIds.join(", ")} together: they are in volume groups ${[...groups].join(", ")}, and one group snapshot takes volumes of one volume group. Use a StorageClass with one volumeGroup for volumes snapshotted together.`,
          );
        }
        const volumeGroup = [...groups][0] as string;
        const name = engineName(r.name);
        const existing = await orNull(san.getGroupSnapshot(`${volumeGroup}/${name}`));
        if (existing) {
          if ([...existing.sourceIds].sort().join(",") !== volumeIds.join(",")) {
            throw new CsiError(status.ALREADY_EXISTS, `A group snapshot named '${r.name}' already exists (${existing.id}) with other volumes: ${existing.sourceIds.join(", ")}. Use another name.`);
          }
          return { groupSnapshot: await groupMessage(existing) };
        }
        for (const id of volumeIds) await san.getVolume(id);
        const thaw = fsfreeze ? await freezer.freeze(volumeIds) : null;
        // The snapshot's own failure outranks a failed thaw; a failed thaw after a good snapshot is reported so the CO
        // retries, and the retry (idempotent, no freeze for an existing group) cannot leave anything frozen.
        let created: GroupSnapshotInfo | null = null;
        let failure: unknown = null;
        try {
          created = await san.createGroupSnapshot({ volumeGroup, name, volumeIds });
        } catch (err) {
          failure = err;
        }
        if (thaw) {
          try {
            await thaw();
          } catch (err) {
            context.logger.error({ err, volumeIds }, "thawing the group snapshot's filesystems failed");
            failure ??= new CsiError(status.UNAVAILABLE, `The group snapshot was taken, but thawing the filesystems of ${volumeIds.join(", ")} failed; check the nodes, then retry.`, { cause: err });
          }
        }
        if (failure !== null || created === null) throw failure;
        return { groupSnapshot: await groupMessage(created) };
      },
    }),

    GetVolumeGroupSnapshot: unary<GroupSnapshotIdRequest>({
      validate: (r) => void checkCsiString("group_snapshot_id", r.groupSnapshotId),
      handle: async (r) => {
        if (!parseEngineId(r.groupSnapshotId)) throw notFound("group snapshot", r.groupSnapshotId);
        const group = await san.getGroupSnapshot(r.groupSnapshotId);
        checkSnapshotIds(group, r.snapshotIds);
        return { groupSnapshot: await groupMessage(group) };
      },
    }),

    DeleteVolumeGroupSnapshot: unary<GroupSnapshotIdRequest>({
      mutating: true,
      validate: (r) => void checkCsiString("group_snapshot_id", r.groupSnapshotId),
      lockKeys: (r) => [`group-snapshot:${r.groupSnapshotId}`],
      handle: async (r) => {
        if (!parseEngineId(r.groupSnapshotId)) return {};
        const group = await orNull(san.getGroupSnapshot(r.groupSnapshotId));
        if (!group) return {};
        checkSnapshotIds(group, r.snapshotIds);
        await ignoreNotFound(san.deleteGroupSnapshot(group.id));
        return {};
      },
    }),
  };
}
