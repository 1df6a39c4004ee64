// Shared pieces of `npm run bench:nbd`: the run configuration, progress lines and a child-process runner.

import { spawn } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { GiB, MiB } from "./storage-common.ts";

/** The repository root, for bin/esan and BENCHMARKS.md. */
export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
/** The esan entry point the bench starts as a separate process, as a user would. */
export const ESAN_BIN = path.join(REPO_ROOT, "bin", "esan");

/** What one run does; `--quick` shrinks sizes and runtimes so a smoke run takes well under a minute. */
export interface NbdBenchConfig {
  quick: boolean;
  /** Append the section to BENCHMARKS.md (full runs only). */
  append: boolean;
  /** Run esan under `node --cpu-prof` and summarize where its time goes per workload (esan only; never appended). */
  profile: boolean;
  /** Which servers run; `--peers-only` and `--profile` narrow it. */
  servers: { esan: boolean; peers: boolean };
  /** Size of every export and of every sequential copy (default 1 GiB). */
  volumeBytes: number;
  /** Seconds per fio run (`--runtime`, time based; default 5, so 3 rounds make the 15 s per server and row). */
  fioSeconds: number;
  /**
   * Rounds per row: each row runs this often on every server, servers in a rotating order, and the median counts,
   * so a burst of other work on the machine hits one round rather than one server (default 3).
   */
  rounds: number;
}

/** Turns the command-line flags into a config; without flags, the full run whose figures get appended. */
export function parseNbdBenchConfig(argv: readonly string[]): NbdBenchConfig {
  const known = ["--quick", "--no-append", "--profile", "--peers-only"];
  const runtimeFlag = argv.find((a) => a.startsWith("--runtime="));
  for (const arg of argv) {
    if (!known.includes(arg) && arg !== runtimeFlag) throw new Error(`Unknown flag "${arg}"; use ${known.join(", ")} or --runtime=SECONDS.`);
  }
  const quick = argv.includes("--quick");
  const profile = argv.includes("--profile");
  const peersOnly = argv.includes("--peers-only");
  if (profile && peersOnly) throw new Error("--profile profiles esan, so it cannot be combined with --peers-only.");
  const fioSeconds = runtimeFlag ? Number(runtimeFlag.slice("--runtime=".length)) : quick ? 2 : 5;
  if (!Number.isInteger(fioSeconds) || fioSeconds < 1) throw new Error(`--runtime takes a whole number of seconds, got "${runtimeFlag}".`);
  return {
    quick,
    append: !quick && !profile && !peersOnly && runtimeFlag === undefined && !argv.includes("--no-append"),
    profile,
    servers: { esan: !peersOnly, peers: !profile },
    volumeBytes: quick ? 256 * MiB : 1 * GiB,
    fioSeconds,
    rounds: quick ? 2 : 3,
  };
}

/** A progress line on stderr, so stdout holds only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench:nbd] ${message}\n`);
}

/** What a finished child process left behind. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  elapsedMs: number;
}

/** Runs `command` to completion and resolves with its output and wall time, whatever its exit status. */
export function runCommand(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: options.env ?? process.env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => stdout.push(b));
    child.stderr.on("data", (b: Buffer) => stderr.push(b));
    child.once("error", (error) => reject(new Error(`Cannot run ${command}: ${error.message}`, { cause: error })));
    child.once("close", (code, signal) => {
      resolve({ code, signal, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8"), elapsedMs: performance.now() - started });
    });
  });
}

/** Runs `command` and throws a sentence with its stderr unless it exits 0. */
export async function runChecked(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) {
    const why = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new Error(`${commandLine(command, args)} ${why}: ${(result.stderr || result.stdout).trim().slice(-2000)}`);
  }
  return result;
}

/** A command line as a shell would read it, quoting what needs quotes. */
export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ");
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
