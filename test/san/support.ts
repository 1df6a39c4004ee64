// Helpers of the SAN service tests: spawn the real `bin/esan san serve` on a temp data directory, run CLI commands
// against it, and stop every server by its pid (its process group, if need be) however a test ends.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { tempDataDir } from "../support/temp-dir.ts";

/** The launcher the tests run, as a user would. */
export const ESAN = path.resolve(import.meta.dirname, "..", "..", "bin", "esan");
/** Binary units. */
export const KiB = 1024;
export const MiB = 1024 * KiB;

/** What one CLI run produced. */
export interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Our environment without the esan variables, so only what a test passes counts. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ["ESAN_DATA_DIR", "ESAN_SAN", "ESAN_SAN_TOKEN_FILE", "ESAN_SAN_TLS_DIR", "ESAN_DEBUG"]) delete env[key];
  return { ...env, ...extra };
}

/** Runs bin/esan with `args` and resolves whatever the exit status. */
export function run(args: readonly string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(ESAN, args, { encoding: "buffer", maxBuffer: 256 * MiB, env: options.env ?? cleanEnv() }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") {
        reject(new Error(`esan ${args.join(" ")} did not run: ${error.message}`));
        return;
      }
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr: stderr.toString("utf8") });
    });
    child.stdin?.end(options.input ?? "");
  });
}

/** Runs esan --json, expects success, and parses stdout. */
export async function runJson<T = Record<string, unknown>>(args: readonly string[], options?: { input?: Buffer | string; env?: NodeJS.ProcessEnv }): Promise<T> {
  const result = await run([...args, "--json"], options);
  expect(result.code, `esan ${args.join(" ")} failed: ${result.stderr}${result.stdout.toString()}`).toBe(0);
  return JSON.parse(result.stdout.toString("utf8")) as T;
}

/** Asserts a failed run printed `CODE: sentence` on stderr and returns the sentence. */
export function expectError(result: Run, code: string): string {
  expect(result.code, result.stdout.toString()).toBe(1);
  const match = /^([A-Za-z]+): (.+)\n$/s.exec(result.stderr);
  expect(match?.[1], result.stderr).toBe(code);
  return match?.[2] ?? "";
}

/** The endpoints `san serve --json` prints when ready. */
export interface ServeEndpoints {
  dataDir: string;
  pid: number;
  api: string[];
  nbd: string[];
}

/** A running `esan san serve`. */
export interface Served extends EsanProcess<ServeEndpoints> {
  endpoints: ServeEndpoints;
  /** The unix API URL, for --san. */
  api: string;
}

const running = new Set<ChildProcess>();

/** A running esan process started by `startEsan`: what its ready output said, its log, and how to stop it. */
export interface EsanProcess<T> {
  child: ChildProcess;
  ready: T;
  /** Everything it logged on stderr so far. */
  log: () => string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** Sends SIGTERM and waits for the exit. */
  stop: () => Promise<number | string>;
}

/**
 * Starts `bin/esan ARGS` in a process group of its own (so a stuck server and anything it started are killed
 * together by `killServers`) and waits until `parseReady` makes sense of its stdout; rejects with its stderr if it
 * exits first.
 */
export function startEsan<T>(args: readonly string[], parseReady: (stdout: string) => T | null): Promise<EsanProcess<T>> {
  const child = spawn(ESAN, args, { env: cleanEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? -1);
    });
  });
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      const ready = parseReady(stdout);
      if (ready === null) return;
      resolve({
        child,
        ready,
        log: () => stderr,
        exited,
        stop: () => {
          child.kill("SIGTERM");
          return exited;
        },
      });
    });
    void exited.then((code) => reject(new Error(`esan ${args.slice(0, 2).join(" ")} exited (${code}) before it was ready: ${stderr}`)));
  });
}

/** Starts `bin/esan san serve --json` and waits for its endpoints. */
export async function serve(dataDir: string, extraArgs: readonly string[] = []): Promise<Served> {
  const started = await startEsan(["san", "serve", "--data-dir", dataDir, "--json", ...extraArgs], (stdout) =>
    stdout.trimEnd().endsWith("}") ? (JSON.parse(stdout) as ServeEndpoints) : null,
  );
  return { ...started, endpoints: started.ready, api: started.ready.api.find((a) => a.startsWith("unix://")) ?? "" };
}

/** Kills (SIGKILL, whole process group) every server a test left running; call in afterEach/afterAll. */
export async function killServers(): Promise<void> {
  const left = [...running];
  for (const child of left) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  const alive = left.filter((child) => child.exitCode === null && child.signalCode === null);
  await Promise.all(alive.map((child) => new Promise((resolve) => child.once("exit", resolve))));
}

/** A fresh SAN: its data directory made with `san create`, and a cleanup that removes it. */
export async function freshSan(createArgs: readonly string[] = ["--capacity", "1GiB"]): Promise<{ dataDir: string; root: string; cleanup: () => void }> {
  const temp = tempDataDir("esan-serve");
  const created = await run(["san", "create", ...createArgs, "--data-dir", temp.dir]);
  expect(created.code, created.stderr).toBe(0);
  return { dataDir: temp.dir, root: path.dirname(temp.dir), cleanup: temp.cleanup };
}

/** Writes `content` to a file under `dir` with mode 0600 and returns its path. */
export function secretFile(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content, { mode: 0o600 });
  return file;
}
