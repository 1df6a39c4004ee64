// The `esan` command tree and the one place that turns a run's outcome into output and an exit status.
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { registerCheckCommand } from "./check.ts";
import { registerCsiCommand } from "./csi.ts";
import { registerDiskSnapshotCommands } from "./disk-snapshot.ts";
import { registerGroupSnapshotCommands } from "./group-snapshot.ts";
import { OutputClosedError } from "./io.ts";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, printError, processSink, type OutputSink } from "./output.ts";
import { registerSanCommands } from "./san.ts";
import { registerSnapshotCommands } from "./snapshot.ts";
import { registerVolumeGroupCommands } from "./volume-group.ts";
import { registerVolumeCommands } from "./volume.ts";

/** The version in package.json, shown by `esan --version`. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return manifest.version ?? "unknown";
}

/** Builds the whole command tree. Usage errors throw CommanderError instead of exiting, so runCli picks the status. */
export function buildProgram(sink: OutputSink = processSink): Command {
  const program = new Command("esan")
    .description("Admin CLI of esan, an embedded Elastic-SAN-like block store: volumes, instant snapshots, clones and diffs.\nWorks on a data directory (--data-dir) or on a running service (--san).")
    .version(packageVersion(), "-V, --version", "print the esan version")
    .addOption(new Option("--data-dir <dir>", "the SAN's data directory, opened directly (no service may hold it)").env("ESAN_DATA_DIR"))
    .addOption(new Option("--san <url>", "a running 'esan san serve': unix:///PATH or tcp://HOST:PORT").env("ESAN_SAN"))
    .addOption(new Option("--san-token-file <file>", "bearer token for a tcp:// --san").env("ESAN_SAN_TOKEN_FILE"))
    .addOption(new Option("--san-tls-dir <dir>", "ca.crt, and tls.crt + tls.key for mutual TLS, for a tcp:// --san").env("ESAN_SAN_TLS_DIR"))
    .option("--json", "print machine-readable JSON (errors too, on stdout)")
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: sink.stdout, writeErr: sink.stderr })
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  // Subcommands are added after the settings above so that each one inherits them.
  registerSanCommands(program);
  registerVolumeGroupCommands(program);
  registerVolumeCommands(program);
  registerSnapshotCommands(program);
  registerGroupSnapshotCommands(program);
  registerDiskSnapshotCommands(program);
  registerCheckCommand(program);
  registerCsiCommand(program);
  return program;
}

/**
 * Runs one esan command line (`argv` as in process.argv) and returns the exit status: 0 on success,
 * 1 when the engine refused or failed (or `check` found faults), 2 when the command line itself was wrong.
 */
export async function runCli(argv: readonly string[], sink: OutputSink = processSink): Promise<number> {
  const program = buildProgram(sink);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed the message (or the help, or the version).
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof OutputClosedError) return EXIT_FAILED;
    const json = program.opts<{ json?: boolean }>().json === true || argv.includes("--json");
    return printError(sink, err, { json, debug: process.env.ESAN_DEBUG === "1" }) || EXIT_FAILED;
  }
}
