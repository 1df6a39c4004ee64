// `esan volume create|list|show|resize|delete|write|read`: thin block devices and their data.
import { Option, type Command } from "commander";
import type { SectorSize, VolumeInfo } from "../storage/types.ts";
import { registerAttachmentCommands } from "./attachments.ts";
import { withClient } from "./context.ts";
import { runRead, runWrite, type ReadFlags, type WriteFlags } from "./data.ts";
import { formatVolume, formatVolumeTable } from "./format.ts";
import { parseObjectId, parseVolumeSource, type VolumeSource } from "./ids.ts";
import { listAll } from "./paging.ts";
import { parseSize } from "./units.ts";

/** Raw options of `volume create`. */
interface VolumeCreateFlags {
  size: string;
  sectorSize?: string;
  source?: string;
}

/** The engine's `createVolume` request. */
export interface VolumeCreateRequest {
  volumeGroup: string;
  name: string;
  sizeBytes: number;
  sectorSize?: SectorSize;
  source?: VolumeSource;
}

/** Turns `volume create VG/NAME` and its flags into the engine's request. */
export function volumeCreateRequest(idText: string, flags: VolumeCreateFlags): VolumeCreateRequest {
  const { volumeGroup, name } = parseObjectId(idText, "volume");
  const request: VolumeCreateRequest = { volumeGroup, name, sizeBytes: parseSize(flags.size, "--size") };
  if (flags.sectorSize !== undefined) request.sectorSize = Number(flags.sectorSize) as SectorSize;
  if (flags.source !== undefined) request.source = parseVolumeSource(flags.source);
  return request;
}

/** Adds the `volume` command group to the program. */
export function registerVolumeCommands(program: Command): void {
  const volume = program.command("volume").description("create, inspect, resize, delete, write, read, attach and detach volumes");

  volume
    .command("create")
    .argument("<vg/name>", "volume group and volume name")
    .description("create a volume, empty or as an instant clone (returns the existing one if it matches)")
    .requiredOption("--size <size>", "size, a multiple of the sector size (e.g. 1GiB)")
    .addOption(new Option("--sector-size <bytes>", "logical sector size (default: 512)").choices(["512", "4096"]))
    .option("--source <kind:id>", "clone from snapshot:VG/SNAPSHOT or volume:VG/VOLUME, or restore disk-snapshot:NAME (usable at once, hydrates in the background) (default: empty)")
    .action(async (id: string, flags: VolumeCreateFlags, command: Command) => {
      const request = volumeCreateRequest(id, flags);
      await withClient(command, async ({ client, print }) => {
        const created = await client.createVolume(request);
        print(created, () => formatVolume(created));
      });
    });

  volume
    .command("list")
    .description("list volumes, sorted by id")
    .option("--vg <name>", "only volumes of this volume group (default: all)")
    .action(async (flags: { vg?: string }, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const volumes: VolumeInfo[] = await listAll((startingToken) => client.listVolumes({ volumeGroup: flags.vg, startingToken }));
        print(volumes, () => formatVolumeTable(volumes));
      });
    });

  volume
    .command("show")
    .argument("<vg/name>", "volume id")
    .description("show a volume's size, usage, source, snapshot count and, for a restored volume, its hydration")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, async ({ client, print }) => {
        const shown = await client.getVolume(ref.id);
        print(shown, () => formatVolume(shown));
      });
    });

  volume
    .command("resize")
    .argument("<vg/name>", "volume id")
    .description("grow a volume (shrinking is refused)")
    .requiredOption("--size <size>", "new size, a multiple of the sector size")
    .action(async (id: string, flags: { size: string }, command: Command) => {
      const ref = parseObjectId(id, "volume");
      const sizeBytes = parseSize(flags.size, "--size");
      await withClient(command, async ({ client, print }) => {
        const resized = await client.resizeVolume(ref.id, sizeBytes);
        print(resized, () => formatVolume(resized));
      });
    });

  volume
    .command("delete")
    .argument("<vg/name>", "volume id")
    .description("delete a volume; its snapshots and clones keep their data")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, async ({ client, print }) => {
        await client.deleteVolume(ref.id);
        print({ id: ref.id, deleted: true }, () => `deleted volume ${ref.id}`);
      });
    });

  volume
    .command("write")
    .argument("<vg/name>", "volume id")
    .description("write a file, or stdin, into the volume at an offset, then flush")
    .option("--offset <size>", "byte offset to write at (default: 0)")
    .option("--file <path>", "file to write (default: stdin)")
    .action(async (id: string, flags: WriteFlags, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, (context) => runWrite(context, ref.id, flags));
    });

  volume
    .command("read")
    .argument("<vg/name>", "volume id")
    .description("read the volume, or a range of it, to a file or stdout")
    .option("--offset <size>", "byte offset to start at (default: 0)")
    .option("--length <size>", "bytes to read (default: to the end of the volume)")
    .option("--file <path>", "file to write the data to (default: stdout)")
    .action(async (id: string, flags: ReadFlags, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, async (context) => {
        await runRead(context, ref.id, (await context.client.getVolume(ref.id)).sizeBytes, flags);
      });
    });

  registerAttachmentCommands(volume);
}
