// `esan snapshot create|list|show|delete|read|diff`: instant incremental snapshots and changed-block diffs.
import type { Command } from "commander";
import type { DiffResult, SnapshotInfo } from "../storage/types.ts";
import { withClient } from "./context.ts";
import { runRead, type ReadFlags } from "./data.ts";
import { formatDiff, formatSnapshot, formatSnapshotTable } from "./format.ts";
import { parseObjectId } from "./ids.ts";
import { listAll } from "./paging.ts";

/** The `snapshot diff --json` shape: the engine's DiffResult with `chunkSizeBytes` printed as `chunkSize`. */
export interface DiffOutput {
  chunkSize: number;
  changedBytes: number;
  ranges: Array<{ offset: number; length: number }>;
}

/** Reshapes an engine DiffResult into the `snapshot diff --json` output. */
export function diffOutput(diff: DiffResult): DiffOutput {
  return {
    chunkSize: diff.chunkSizeBytes,
    changedBytes: diff.changedBytes,
    ranges: diff.ranges.map((range) => ({ offset: range.offset, length: range.length })),
  };
}

/** Adds the `snapshot` command group to the program. */
export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command("snapshot").description("take, inspect, read, diff and delete instant snapshots");

  snapshot
    .command("create")
    .argument("<vg/name>", "volume group and snapshot name")
    .description("snapshot a volume; instant, and costs only the chunks later overwritten")
    .requiredOption("--source <vg/volume>", "the volume to snapshot")
    .action(async (id: string, flags: { source: string }, command: Command) => {
      const { volumeGroup, name } = parseObjectId(id, "snapshot");
      const sourceVolumeId = parseObjectId(flags.source, "--source").id;
      await withClient(command, async ({ client, print }) => {
        const created = await client.createSnapshot({ volumeGroup, name, sourceVolumeId });
        print(created, () => formatSnapshot(created));
      });
    });

  snapshot
    .command("list")
    .description("list snapshots, sorted by id")
    .option("--source <vg/volume>", "only snapshots of this volume (default: all)")
    .action(async (flags: { source?: string }, command: Command) => {
      const sourceVolumeId = flags.source === undefined ? undefined : parseObjectId(flags.source, "--source").id;
      await withClient(command, async ({ client, print }) => {
        const snapshots: SnapshotInfo[] = await listAll((startingToken) => client.listSnapshots({ sourceVolumeId, startingToken }));
        print(snapshots, () => formatSnapshotTable(snapshots));
      });
    });

  snapshot
    .command("show")
    .argument("<vg/name>", "snapshot id")
    .description("show a snapshot's source, size, used and changed bytes")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "snapshot");
      await withClient(command, async ({ client, print }) => {
        const shown = await client.getSnapshot(ref.id);
        print(shown, () => formatSnapshot(shown));
      });
    });

  snapshot
    .command("delete")
    .argument("<vg/name>", "snapshot id")
    .description("delete a snapshot and free the chunks no other image holds")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "snapshot");
      await withClient(command, async ({ client, print }) => {
        await client.deleteSnapshot(ref.id);
        print({ id: ref.id, deleted: true }, () => `deleted snapshot ${ref.id}`);
      });
    });

  snapshot
    .command("read")
    .argument("<vg/name>", "snapshot id")
    .description("read the snapshot, or a range of it, to a file or stdout")
    .option("--offset <size>", "byte offset to start at (default: 0)")
    .option("--length <size>", "bytes to read (default: to the end of the snapshot)")
    .option("--file <path>", "file to write the data to (default: stdout)")
    .action(async (id: string, flags: ReadFlags, command: Command) => {
      const ref = parseObjectId(id, "snapshot");
      await withClient(command, async (context) => {
        await runRead(context, ref.id, (await context.client.getSnapshot(ref.id)).sizeBytes, flags);
      });
    });

  snapshot
    .command("diff")
    .argument("<base>", "base snapshot (or volume) id, VG/NAME")
    .argument("<target>", "target snapshot or volume id, VG/NAME")
    .description("list the chunk-aligned byte ranges where target may differ from base")
    .action(async (base: string, target: string, _flags: unknown, command: Command) => {
      const baseId = parseObjectId(base, "base").id;
      const targetId = parseObjectId(target, "target").id;
      await withClient(command, async ({ client, print }) => {
        const diff = await client.diff(baseId, targetId);
        print(diffOutput(diff), () => formatDiff(baseId, targetId, diff));
      });
    });
}
