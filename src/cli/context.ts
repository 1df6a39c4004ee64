// What every command shares: the global --data-dir/--json options, and opening the SAN for exactly one command.
import type { Command } from "commander";
import { San } from "../storage/san.ts";
import { EXIT_USAGE, printResult, processSink, type OutputSink } from "./output.ts";

/** The options every command accepts, read from the command line or the environment. */
export interface GlobalOptions {
  /** The SAN's data directory: --data-dir, else ESAN_DATA_DIR; undefined when neither is set. */
  dataDir: string | undefined;
  /** Print machine-readable JSON instead of human text. */
  json: boolean;
}

/** Reads the global options that apply to `command`, wherever on the command line they were given. */
export function globalOptions(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<{ dataDir?: string; json?: boolean }>();
  return { dataDir: options.dataDir, json: options.json === true };
}

/** The data directory, or a usage error (exit 2) that says how to name one. */
export function requireDataDir(command: Command): string {
  const { dataDir } = globalOptions(command);
  if (dataDir === undefined || dataDir === "") {
    command.error("error: esan needs a data directory: pass --data-dir DIR or set ESAN_DATA_DIR.", {
      exitCode: EXIT_USAGE,
      code: "esan.missingDataDir",
    });
  }
  return dataDir;
}

/** What a command body gets: the open SAN, whether --json is on, and where to print. */
export interface CommandContext {
  san: San;
  json: boolean;
  sink: OutputSink;
  /** Prints `value` as JSON under --json, else `human()`. */
  print: (value: unknown, human: () => string) => void;
}

/**
 * Opens the SAN of the command's data directory, runs `body`, and closes the SAN however `body` ends,
 * so the directory's pid lock is always released and acknowledged writes are committed.
 */
export async function withSan<T>(command: Command, body: (context: CommandContext) => T | Promise<T>): Promise<T> {
  const san = San.open(requireDataDir(command));
  try {
    return await body(makeContext(command, san));
  } finally {
    san.close();
  }
}

/** Builds the context for a SAN the caller already holds (`san create` makes its own). */
export function makeContext(command: Command, san: San, sink: OutputSink = processSink): CommandContext {
  const { json } = globalOptions(command);
  return { san, json, sink, print: (value, human) => printResult(sink, json, value, human) };
}
