// `esan san create|show|serve`: make a SAN in a data directory, report its capacity, usage and limits, or serve it.
import type { Command } from "commander";
import { San } from "../storage/san.ts";
import { DEFAULT_CHUNK_SIZE_BYTES, DEFAULT_LIMITS, type SanCreateOptions, type SanLimits } from "../storage/types.ts";
import { makePrinter, requireDataDir, withClient } from "./context.ts";
import { formatSanInfo } from "./format.ts";
import { registerServeCommand } from "./serve.ts";
import { formatDuration, formatSize, parseCount, parseRate, parseSize } from "./units.ts";

/** Raw option values of `san create`, as commander hands them over. */
interface SanCreateFlags {
  capacity: string;
  chunkSize?: string;
  maxSnapshotsPerVolume?: string;
  snapshotRate?: string;
}

/** Turns `san create` flags into engine options; unset flags are left to the engine's defaults. */
export function sanCreateOptions(flags: SanCreateFlags): SanCreateOptions {
  const limits: Partial<SanLimits> = {};
  if (flags.maxSnapshotsPerVolume !== undefined) {
    limits.maxSnapshotsPerVolume = parseCount(flags.maxSnapshotsPerVolume, "--max-snapshots-per-volume");
  }
  if (flags.snapshotRate !== undefined) {
    const rate = parseRate(flags.snapshotRate, "--snapshot-rate");
    limits.snapshotRateCount = rate.count;
    limits.snapshotRateWindowMs = rate.windowMs;
  }
  const options: SanCreateOptions = { capacityBytes: parseSize(flags.capacity, "--capacity"), limits };
  if (flags.chunkSize !== undefined) options.chunkSizeBytes = parseSize(flags.chunkSize, "--chunk-size");
  return options;
}

/** Adds the `san` command group to the program. */
export function registerSanCommands(program: Command): void {
  const san = program.command("san").description("create a SAN in a data directory, show its capacity, usage and limits, or serve it");
  const defaultRate = `${DEFAULT_LIMITS.snapshotRateCount}/${formatDuration(DEFAULT_LIMITS.snapshotRateWindowMs)}`;

  san
    .command("create")
    .description("create a SAN in the data directory (which must not hold one yet)")
    .requiredOption("--capacity <size>", "capacity: the most the volumes' sizes may add up to, and the physical space (e.g. 10TiB)")
    .option("--chunk-size <size>", `copy-on-write and diff unit, a power of two from 4KiB to 1MiB (default: ${formatSize(DEFAULT_CHUNK_SIZE_BYTES).replace(" ", "")})`)
    .option("--max-snapshots-per-volume <count>", `instant snapshots one volume may hold (default: ${DEFAULT_LIMITS.maxSnapshotsPerVolume})`)
    .option("--snapshot-rate <count/duration>", `snapshot creations allowed per volume per rolling window (default: ${defaultRate})`)
    .action((flags: SanCreateFlags, command: Command) => {
      const options = sanCreateOptions(flags);
      const created = San.create(requireDataDir(command), options);
      try {
        const info = created.info();
        makePrinter(command).print(info, () => `created SAN in ${created.dataDir}\n${formatSanInfo(info)}`);
      } finally {
        created.close();
      }
    });

  san
    .command("show")
    .description("show capacity, provisioned and physical bytes, counts and limits")
    .action(async (_flags: unknown, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const info = await client.info();
        print(info, () => formatSanInfo(info));
      });
    });

  registerServeCommand(san);
}
