// `esan group-snapshot create|list|show|delete`: crash-consistent snapshots of several volumes taken in one commit.
import type { Command } from "commander";
import type { GroupSnapshotInfo } from "../storage/types.ts";
import { withClient } from "./context.ts";
import { formatGroupSnapshot, formatGroupSnapshotTable } from "./format.ts";
import { parseObjectId, parseVolumeList } from "./ids.ts";
import { listAll } from "./paging.ts";

/** Adds the `group-snapshot` command group to the program. */
export function registerGroupSnapshotCommands(program: Command): void {
  const groupSnapshot = program.command("group-snapshot").description("snapshot several volumes at one point in time");

  groupSnapshot
    .command("create")
    .argument("<vg/name>", "volume group and group snapshot name")
    .description("snapshot all the given volumes in one commit")
    .requiredOption("--volumes <list>", "comma-separated volume ids, VG/A,VG/B (a bare NAME means a volume in VG)")
    .action(async (id: string, flags: { volumes: string }, command: Command) => {
      const { volumeGroup, name } = parseObjectId(id, "group snapshot");
      const volumeIds = parseVolumeList(flags.volumes, volumeGroup);
      await withClient(command, async ({ client, print }) => {
        const created = await client.createGroupSnapshot({ volumeGroup, name, volumeIds });
        print(created, () => formatGroupSnapshot(created));
      });
    });

  groupSnapshot
    .command("list")
    .description("list group snapshots, sorted by id")
    .option("--vg <name>", "only group snapshots of this volume group (default: all)")
    .action(async (flags: { vg?: string }, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const groups: GroupSnapshotInfo[] = await listAll((startingToken) => client.listGroupSnapshots({ volumeGroup: flags.vg, startingToken }));
        print(groups, () => formatGroupSnapshotTable(groups));
      });
    });

  groupSnapshot
    .command("show")
    .argument("<vg/name>", "group snapshot id")
    .description("show a group snapshot and its member snapshots")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "group snapshot");
      await withClient(command, async ({ client, print }) => {
        const shown = await client.getGroupSnapshot(ref.id);
        print(shown, () => formatGroupSnapshot(shown));
      });
    });

  groupSnapshot
    .command("delete")
    .argument("<vg/name>", "group snapshot id")
    .description("delete a group snapshot and its member snapshots")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "group snapshot");
      await withClient(command, async ({ client, print }) => {
        await client.deleteGroupSnapshot(ref.id);
        print({ id: ref.id, deleted: true }, () => `deleted group snapshot ${ref.id}`);
      });
    });
}
