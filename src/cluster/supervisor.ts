// The processes of a local cluster: each started as a child in a process group of its own, with its output in a log
// file, tracked by pid, and stopped in reverse start order (SIGTERM to the group, SIGKILL after a grace period), so
// nothing it started outlives stop() however the cluster or a test ended.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** One supervised process. */
export interface Supervised {
  name: string;
  pid: number;
  logFile: string;
  /** Why it ended (`exited with 1`, `was killed by SIGKILL`), or undefined while it runs. */
  exitStatus: () => string | undefined;
  /** The last lines of its log, for error messages. */
  logTail: (lines?: number) => string;
  exited: Promise<void>;
}

/** Options of Supervisor.start. */
export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** How long stop() waits after SIGTERM before SIGKILL (default 10 s). */
  graceMs?: number;
}

interface Entry {
  child: ChildProcess;
  process: Supervised;
  graceMs: number;
  stopping: boolean;
}

/** Starts, tracks and stops the processes of one cluster. */
export class Supervisor {
  readonly logDir: string;
  readonly #entries: Entry[] = [];
  readonly #onUnexpectedExit: (process: Supervised) => void;

  /** `onUnexpectedExit` hears of a process that ended before stop() asked it to. */
  constructor(logDir: string, onUnexpectedExit: (process: Supervised) => void = () => {}) {
    this.logDir = logDir;
    this.#onUnexpectedExit = onUnexpectedExit;
    fs.mkdirSync(logDir, { recursive: true });
  }

  /** The processes now tracked, in start order. */
  get processes(): Supervised[] {
    return this.#entries.map((entry) => entry.process);
  }

  /** Starts `command` as `name`; its stdout and stderr go to LOG_DIR/NAME.log. */
  start(name: string, command: string, args: readonly string[], options: StartOptions = {}): Supervised {
    const logFile = path.join(this.logDir, `${name}.log`);
    const log = fs.openSync(logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(command, args, { detached: true, stdio: ["ignore", log, log], env: options.env ?? process.env, cwd: options.cwd });
    } finally {
      fs.closeSync(log);
    }
    let status: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        status = signal ? `was killed by ${signal}` : `exited with ${code}`;
        resolve();
      });
      child.once("error", (error) => {
        status = `could not start (${error.message})`;
        resolve();
      });
    });
    const supervised: Supervised = {
      name,
      pid: child.pid ?? -1,
      logFile,
      exitStatus: () => status,
      logTail: (lines = 30) => tail(logFile, lines),
      exited,
    };
    const entry: Entry = { child, process: supervised, graceMs: options.graceMs ?? 10_000, stopping: false };
    this.#entries.push(entry);
    void exited.then(() => {
      if (!entry.stopping) this.#onUnexpectedExit(supervised);
    });
    return supervised;
  }

  /** Stops one process (its whole group): SIGTERM, then SIGKILL after its grace period. */
  async stop(supervised: Supervised): Promise<void> {
    const entry = this.#entries.find((e) => e.process === supervised);
    if (!entry) return;
    entry.stopping = true;
    if (supervised.exitStatus() === undefined) {
      signalGroup(supervised.pid, "SIGTERM");
      const ended = await Promise.race([supervised.exited.then(() => true), sleep(entry.graceMs).then(() => false)]);
      if (!ended) signalGroup(supervised.pid, "SIGKILL");
      await supervised.exited;
    }
    // Anything the process left in its group (it ended, its children may not have) goes too.
    signalGroup(supervised.pid, "SIGKILL");
    this.#entries.splice(this.#entries.indexOf(entry), 1);
  }

  /** Stops every tracked process, the last started first. */
  async stopAll(): Promise<void> {
    for (const entry of [...this.#entries].reverse()) await this.stop(entry.process);
  }
}

/** Sends `signal` to the process group `pid` leads; a group already gone is not an error. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Gone already.
  }
}

/** Resolves after `ms` milliseconds (for polling other processes, never to wait for time itself). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `ready` every `intervalMs` until it returns true; throws `describe()` after `timeoutMs`. */
export async function waitFor(ready: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(describe());
    await sleep(intervalMs);
  }
}

function tail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
