// `esan volume-group create|list|delete`: the namespaces that hold volumes and snapshots.
import type { Command } from "commander";
import { withClient } from "./context.ts";
import { formatVolumeGroup, formatVolumeGroupTable } from "./format.ts";

/** Adds the `volume-group` command group to the program. */
export function registerVolumeGroupCommands(program: Command): void {
  const group = program.command("volume-group").description("create, list and delete volume groups");

  group
    .command("create")
    .argument("<name>", "volume group name: 1-63 of a-z, 0-9 and -, starting and ending with a letter or digit")
    .description("create a volume group (returns the existing one if it is already there)")
    .action(async (name: string, _flags: unknown, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const created = await client.createVolumeGroup(name);
        print(created, () => formatVolumeGroup(created));
      });
    });

  group
    .command("list")
    .description("list volume groups")
    .action(async (_flags: unknown, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const groups = await client.listVolumeGroups();
        print(groups, () => formatVolumeGroupTable(groups));
      });
    });

  group
    .command("delete")
    .argument("<name>", "volume group name")
    .description("delete an empty volume group")
    .action(async (name: string, _flags: unknown, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        await client.deleteVolumeGroup(name);
        print({ id: name, deleted: true }, () => `deleted volume group ${name}`);
      });
    });
}
