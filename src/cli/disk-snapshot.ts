// `esan disk-snapshot export|list|show|delete|diff|copy`: the durable tier — snapshots exported out of the SAN into a
// durable store, as incremental families (Azure managed-disk incremental snapshots).
import { resolve } from "node:path";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import type { SanClient } from "../san/san-client.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import { San } from "../storage/san.ts";
import type { DiskSnapshotInfo } from "../storage/types.ts";
import { makePrinter, sanTarget, withClient, type Printer } from "./context.ts";
import { formatDiff, keyValues, sizeWithBytes, table } from "./format.ts";
import { parseObjectId } from "./ids.ts";
import { diffOutput } from "./snapshot.ts";
import { formatSize } from "./units.ts";

/** How often `export --wait` polls completionPercent. */
const POLL_MS = 200;
/** How often `export --wait` without a terminal prints a progress line. */
const LINE_MS = 2000;

/** `disk-snapshot show` / `disk-snapshot export`. */
export function formatDiskSnapshot(snapshot: DiskSnapshotInfo): string {
  return keyValues([
    ["name", snapshot.name],
    ["source", snapshot.sourceResourceId],
    ["source unique id", snapshot.sourceUniqueId],
    ["exported from", snapshot.exportedFrom],
    ["incremental", snapshot.incremental ? `yes, after member ${snapshot.previousMemberId ?? "?"}` : "no (full)"],
    ["member id", snapshot.memberId],
    ["size", sizeWithBytes(snapshot.sizeBytes)],
    ["used", sizeWithBytes(snapshot.usedBytes)],
    ["sector size", String(snapshot.sectorSize)],
    ["completion", `${snapshot.completionPercent}%`],
    ["store", snapshot.store],
    ["created", snapshot.createdAt],
  ]);
}

/** `disk-snapshot list`. */
export function formatDiskSnapshotTable(snapshots: readonly DiskSnapshotInfo[]): string {
  return table(
    ["NAME", "SOURCE", "FROM", "INCREMENTAL", "SIZE", "USED", "DONE", "CREATED"],
    snapshots.map((s) => [
      s.name,
      s.sourceResourceId,
      s.exportedFrom,
      s.incremental ? "yes" : "no",
      formatSize(s.sizeBytes),
      formatSize(s.usedBytes),
      `${s.completionPercent}%`,
      s.createdAt,
    ]),
    "no disk snapshots",
  );
}

/** Rejects a disk snapshot name that is empty or looks like a VG/NAME id. */
function diskSnapshotName(text: string, what = "disk snapshot name"): string {
  if (text === "" || text.includes("/")) {
    throw new InvalidArgumentError(`Cannot read ${what} "${text}": a disk snapshot is named by a plain NAME, such as db-nightly, without a volume group.`);
  }
  return text;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * Waits for the export of `name` to complete, showing its progress on stderr: a progress bar on a terminal, else a
 * line every few seconds. The engine's wait decides when it ended (and rejects if the export failed); polling
 * getDiskSnapshot only drives the display.
 */
async function waitWithProgress(client: SanClient, printer: Printer, started: DiskSnapshotInfo): Promise<DiskSnapshotInfo> {
  const name = started.name;
  let settled = false;
  const done = client.waitForDiskSnapshot(name).finally(() => {
    settled = true;
  });
  done.catch(() => undefined); // handled by the `await done` below; this only keeps the rejection from going unhandled meanwhile
  const tty = process.stderr.isTTY;
  const startedAt = Date.now();
  const bar = tty
    ? new SingleBar({
        format: `export ${name} [{bar}] {percentage}% | {done} of {size} | {rate}/s | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      })
    : undefined;
  const payload = (percent: number) => {
    const bytes = Math.round((started.sizeBytes * percent) / 100);
    const seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
    return { done: formatSize(bytes), size: formatSize(started.sizeBytes), rate: formatSize(Math.round(bytes / seconds)) };
  };
  bar?.start(100, started.completionPercent, payload(started.completionPercent));
  let lastLine = -Infinity;
  const line = (percent: number) => {
    printer.sink.stderr(`export ${name}: ${percent}%\n`);
    lastLine = Date.now();
  };
  try {
    let percent = started.completionPercent;
    if (!tty) line(percent);
    while (!settled) {
      await Promise.race([sleep(POLL_MS), done.catch(() => undefined)]);
      if (settled) break;
      percent = (await client.getDiskSnapshot(name)).completionPercent;
      bar?.update(percent, payload(percent));
      if (!tty && Date.now() - lastLine >= LINE_MS) line(percent);
    }
    const finished = await done;
    bar?.update(finished.completionPercent, payload(finished.completionPercent));
    if (!tty) line(finished.completionPercent);
    return finished;
  } finally {
    bar?.stop();
  }
}

/** Adds the `disk-snapshot` command group to the program. */
export function registerDiskSnapshotCommands(program: Command): void {
  const diskSnapshot = program
    .command("disk-snapshot")
    .description("export snapshots to a durable store as incremental families; list, show, diff, delete and copy them");

  diskSnapshot
    .command("export")
    .argument("<name>", "the disk snapshot's name (plain NAME, unique in the SAN)")
    .description(
      "export an instant snapshot, or a volume's current state, to the durable store; the first member of a family is full, " +
        "later ones hold only the chunks changed since the previous member (idempotent by name)",
    )
    .requiredOption("--source <vg/name>", "the snapshot (VG/SNAP) or volume (VG/VOL) to export")
    .option("--store <dir>", "directory of the durable store (default: DATA_DIR/durable-store)")
    .option("--wait", "wait until the export completes, showing its progress on stderr")
    .addHelpText(
      "after",
      "\nWithout --wait the command returns at once (completionPercent may be below 100; 'disk-snapshot show' reports it).\n" +
        "With --data-dir the export runs inside this esan process: without --wait it stops when the command exits and\n" +
        "resumes from its saved progress the next time the data directory is opened (by any esan command or 'esan san serve').\n" +
        "With --san the service runs it to completion either way.",
    )
    .action(async (nameText: string, flags: { source: string; store?: string; wait?: boolean }, command: Command) => {
      const name = diskSnapshotName(nameText);
      const sourceId = parseObjectId(flags.source, "--source").id;
      await withClient(command, async (context) => {
        const { client, print } = context;
        const request = flags.store === undefined ? { name, sourceId } : { name, sourceId, storeDir: resolve(flags.store) };
        let exported = await client.exportDiskSnapshot(request);
        if (flags.wait === true) exported = await waitWithProgress(client, context, exported);
        print(exported, () => formatDiskSnapshot(exported));
      });
    });

  diskSnapshot
    .command("list")
    .description("list disk snapshots, oldest first")
    .option("--source <vg/volume>", "only the current family of this volume (default: all)")
    .action(async (flags: { source?: string }, command: Command) => {
      const sourceId = flags.source === undefined ? undefined : parseObjectId(flags.source, "--source").id;
      await withClient(command, async ({ client, print }) => {
        const snapshots = await client.listDiskSnapshots(sourceId === undefined ? {} : { sourceId });
        print(snapshots, () => formatDiskSnapshotTable(snapshots));
      });
    });

  diskSnapshot
    .command("show")
    .argument("<name>", "disk snapshot name")
    .description("show a disk snapshot's family, size, used bytes and export progress")
    .action(async (nameText: string, _flags: unknown, command: Command) => {
      const name = diskSnapshotName(nameText);
      await withClient(command, async ({ client, print }) => {
        const shown = await client.getDiskSnapshot(name);
        print(shown, () => formatDiskSnapshot(shown));
      });
    });

  diskSnapshot
    .command("delete")
    .argument("<name>", "disk snapshot name")
    .description("delete a disk snapshot, folding its delta into the next member so the rest of its family stays restorable")
    .action(async (nameText: string, _flags: unknown, command: Command) => {
      const name = diskSnapshotName(nameText);
      await withClient(command, async ({ client, print }) => {
        await client.deleteDiskSnapshot(name);
        print({ name, deleted: true }, () => `deleted disk snapshot ${name}`);
      });
    });

  diskSnapshot
    .command("diff")
    .argument("<base>", "base disk snapshot name")
    .argument("<target>", "target disk snapshot name, of the same family")
    .description("list the chunk-aligned byte ranges where two members of one family differ")
    .action(async (base: string, target: string, _flags: unknown, command: Command) => {
      const baseName = diskSnapshotName(base, "base");
      const targetName = diskSnapshotName(target, "target");
      await withClient(command, async ({ client, print }) => {
        const diff = await client.diffDiskSnapshots(baseName, targetName);
        print(diffOutput(diff), () => formatDiff(baseName, targetName, diff));
      });
    });

  diskSnapshot
    .command("copy")
    .description("copy a family to another SAN's durable store: members it lacks, the first in full, then only deltas")
    .requiredOption("--family <source-unique-id>", "the family: the sourceUniqueId shown by 'disk-snapshot show'")
    .requiredOption("--to-data-dir <dir>", "the target SAN's data directory (no service may hold it)")
    .option("--wait", "accepted for symmetry with export; a copy always runs to completion before the command returns")
    .addHelpText(
      "after",
      "\nWorks on data directories only: pass --data-dir for the source SAN, not --san. Both SANs are opened by this\n" +
        "process for the length of the copy. A second copy after new exports moves only the new deltas.",
    )
    .action(async (flags: { family: string; toDataDir: string; wait?: boolean }, command: Command) => {
      const target = sanTarget(command);
      if (target.kind !== "dataDir") {
        throw new InvalidArgumentError(
          "'esan disk-snapshot copy' works on data directories only: pass the source SAN with --data-dir DIR instead of --san, and the target with --to-data-dir.",
        );
      }
      if (resolve(target.dataDir) === resolve(flags.toDataDir)) {
        throw new InvalidArgumentError(`Cannot copy disk snapshots from ${target.dataDir} to itself: --to-data-dir must name another SAN's data directory.`);
      }
      const printer = makePrinter(command);
      const source = San.open(target.dataDir);
      try {
        const destination = San.open(flags.toDataDir);
        try {
          const copied = await source.copyDiskSnapshotFamily(flags.family, destination);
          const result = { family: flags.family, membersCopied: copied.membersCopied, bytesMoved: copied.bytesMoved };
          printer.print(result, () =>
            keyValues([
              ["family", result.family],
              ["members copied", result.membersCopied.length === 0 ? "none (the target is up to date)" : result.membersCopied.join(", ")],
              ["bytes moved", sizeWithBytes(result.bytesMoved)],
            ]),
          );
        } finally {
          destination.close();
        }
      } finally {
        source.close();
      }
    });
}
