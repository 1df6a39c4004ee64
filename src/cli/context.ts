// What every command shares: the global options, and the one SanClient a command works through — the running service
// named by --san, or the data directory named by --data-dir, opened for exactly one command.
import type { Command } from "commander";
import { readTlsDir, readTokenFile } from "../san/credentials.ts";
import type { GrpcSanClientOptions } from "../san/grpc-san-client.ts";
import { LocalSanClient } from "../san/local-san-client.ts";
import type { SanClient } from "../san/san-client.ts";
import { EXIT_USAGE, printResult, processSink, type OutputSink } from "./output.ts";

/** The options every command accepts, read from the command line or the environment. */
export interface GlobalOptions {
  /** The SAN's data directory: --data-dir, else ESAN_DATA_DIR; undefined when neither is set. */
  dataDir: string | undefined;
  /** A running SAN service's API: --san, else ESAN_SAN; undefined when neither is set. */
  san: string | undefined;
  /** Bearer token file for a tcp:// --san: --san-token-file, else ESAN_SAN_TOKEN_FILE. */
  sanTokenFile: string | undefined;
  /** TLS directory (ca.crt, tls.crt, tls.key) for a tcp:// --san: --san-tls-dir, else ESAN_SAN_TLS_DIR. */
  sanTlsDir: string | undefined;
  /** Print machine-readable JSON instead of human text. */
  json: boolean;
}

interface RawGlobals {
  dataDir?: string;
  san?: string;
  sanTokenFile?: string;
  sanTlsDir?: string;
  json?: boolean;
}

/** Reads the global options that apply to `command`, wherever on the command line they were given. */
export function globalOptions(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<RawGlobals>();
  return {
    dataDir: nonEmpty(options.dataDir),
    san: nonEmpty(options.san),
    sanTokenFile: nonEmpty(options.sanTokenFile),
    sanTlsDir: nonEmpty(options.sanTlsDir),
    json: options.json === true,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** Where a command's SAN is: a service's API or a data directory. */
export type SanTarget = { kind: "api"; address: string } | { kind: "dataDir"; dataDir: string };

/** Stops the command with a usage error (exit 2). */
function usageError(command: Command, message: string, code: string): never {
  command.error(`error: ${message}`, { exitCode: EXIT_USAGE, code });
}

/**
 * Picks the SAN a command works on. An option given on the command line beats one from the environment; --san and
 * --data-dir both on the command line is a usage error; both from the environment means the service (which then
 * holds the directory anyway).
 */
export function sanTarget(command: Command): SanTarget {
  const { dataDir, san } = globalOptions(command);
  if (san !== undefined && dataDir !== undefined) {
    const sanFromCli = command.getOptionValueSourceWithGlobals("san") === "cli";
    const dirFromCli = command.getOptionValueSourceWithGlobals("dataDir") === "cli";
    if (sanFromCli && dirFromCli) {
      usageError(command, "pass either --san (a running service) or --data-dir (a data directory no service holds), not both.", "esan.sanAndDataDir");
    }
    return dirFromCli && !sanFromCli ? { kind: "dataDir", dataDir } : { kind: "api", address: san };
  }
  if (san !== undefined) return { kind: "api", address: san };
  if (dataDir !== undefined) return { kind: "dataDir", dataDir };
  return usageError(
    command,
    "esan needs a SAN to work on: pass --data-dir DIR or set ESAN_DATA_DIR to open a data directory, or pass --san unix:///PATH or set ESAN_SAN to use a running 'esan san serve'.",
    "esan.missingDataDir",
  );
}

/** The data directory for commands that only work on one (`san create`, `san serve`); --san on the command line is refused. */
export function requireDataDir(command: Command): string {
  const { dataDir } = globalOptions(command);
  if (command.getOptionValueSourceWithGlobals("san") === "cli") {
    usageError(command, `'${command.parent?.name() ?? "esan"} ${command.name()}' works on a data directory, not a running service: pass --data-dir DIR instead of --san.`, "esan.needsDataDir");
  }
  if (dataDir === undefined) {
    usageError(command, "esan needs a data directory: pass --data-dir DIR or set ESAN_DATA_DIR.", "esan.missingDataDir");
  }
  return dataDir;
}

/**
 * Opens the SanClient the global options name: GrpcSanClient for --san, LocalSanClient for --data-dir. gRPC is
 * loaded only for --san, which keeps the commands that open a directory quick to start.
 */
export async function openClient(command: Command): Promise<SanClient> {
  const target = sanTarget(command);
  if (target.kind === "dataDir") return LocalSanClient.open(target.dataDir);
  const { sanTokenFile, sanTlsDir } = globalOptions(command);
  const options: GrpcSanClientOptions = {};
  if (sanTokenFile !== undefined) options.token = readTokenFile(sanTokenFile, "--san-token-file");
  if (sanTlsDir !== undefined) options.tls = readTlsDir(sanTlsDir, "--san-tls-dir", "client");
  const { GrpcSanClient } = await import("../san/grpc-san-client.ts");
  return GrpcSanClient.connect(target.address, options);
}

/** How a command prints: whether --json is on, where output goes, and `print`. */
export interface Printer {
  json: boolean;
  sink: OutputSink;
  /** Prints `value` as JSON under --json, else `human()`. */
  print: (value: unknown, human: () => string) => void;
}

/** What a command body gets: its SanClient and a printer. */
export interface CommandContext extends Printer {
  client: SanClient;
}

/**
 * Opens the command's SanClient, runs `body`, and closes the client however `body` ends, so a data directory's pid
 * lock is always released and acknowledged writes are committed.
 */
export async function withClient<T>(command: Command, body: (context: CommandContext) => T | Promise<T>): Promise<T> {
  const client = await openClient(command);
  try {
    return await body({ ...makePrinter(command), client });
  } finally {
    await client.close();
  }
}

/** The printer for `command` (`san create` and `san serve` print without a SanClient). */
export function makePrinter(command: Command, sink: OutputSink = processSink): Printer {
  const { json } = globalOptions(command);
  return { json, sink, print: (value, human) => printResult(sink, json, value, human) };
}
