// Processes for the block-device test: commands run with a timeout, long-running children stopped by PID, and a
// cleanup stack that undoes everything a test set up, in reverse order, even when the test failed half-way.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

/** What a finished command left behind. */
export interface CommandOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`) and resolves whatever its exit status. */
export function runCommand(command: string, args: readonly string[], timeoutMs = 60_000): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (error) => reject(new Error(`Cannot run ${command}: ${error.message}`, { cause: error })));
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
  });
}

/** Runs a command and throws a sentence naming it and its stderr unless it exits 0; resolves stdout. */
export async function runOk(command: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const result = await runCommand(command, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`\`${[command, ...args].join(" ")}\` exited with ${result.code}: ${(result.stderr || result.stdout).trim()}`);
  }
  return result.stdout;
}

/** Resolves after `ms` milliseconds (polling only: waiting for a kernel or another process, never for time itself). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `ready` every 50 ms until it returns true; throws `describe()` after `timeoutMs`. */
export async function waitUntil(ready: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(describe());
    await pause(50);
  }
}

/** A long-running child process whose output is kept for error messages, stopped by its PID. */
export class ChildServer {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #output = "";
  #exitStatus: string | undefined;

  constructor(name: string, command: string, args: readonly string[]) {
    this.name = name;
    this.#child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b: Buffer) => {
      this.#output = (this.#output + b.toString("utf8")).slice(-8000);
    };
    this.#child.stdout?.on("data", keep);
    this.#child.stderr?.on("data", keep);
    this.#exited = new Promise((resolve) => {
      this.#child.once("exit", (code, signal) => {
        this.#exitStatus = signal ? `was killed by ${signal}` : `exited with ${code}`;
        resolve();
      });
      this.#child.once("error", (error) => {
        this.#exitStatus = `could not start (${error.message})`;
        resolve();
      });
    });
  }

  /** Why it ended, or undefined while it runs. */
  get exitStatus(): string | undefined {
    return this.#exitStatus;
  }

  /** The last output of the process, for error messages. */
  get output(): string {
    return this.#output.trim();
  }

  /** Resolves true once the process has exited, false if it still runs after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.#exited.then(() => true), pause(timeoutMs).then(() => false)]);
  }

  /** Waits until the unix socket at `socket` accepts connections; throws with the output if the process ends first. */
  async waitForSocket(socket: string, timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      async () => {
        if (this.#exitStatus !== undefined) throw new Error(`${this.name} ${this.#exitStatus} before listening on ${socket}:\n${this.output}`);
        return fs.existsSync(socket) && (await canConnect(socket));
      },
      timeoutMs,
      () => `${this.name} did not listen on ${socket} within ${timeoutMs} ms:\n${this.output}`,
    );
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.#exitStatus !== undefined) return;
    this.#child.kill("SIGTERM");
    if (!(await this.waitForExit(graceMs))) {
      this.#child.kill("SIGKILL");
      await this.#exited;
    }
  }
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const connection = net.createConnection(socket);
    connection.once("connect", () => {
      connection.destroy();
      resolve(true);
    });
    connection.once("error", () => resolve(false));
  });
}

/** Undo actions run last-in first-out; `add` returns a release that runs one action now and forgets it. */
export class CleanupStack {
  readonly #actions: { label: string; run: () => unknown }[] = [];

  /** Registers `run` to undo a resource just acquired; call the returned function to release it early. */
  add(label: string, run: () => unknown): () => Promise<void> {
    const action = { label, run };
    this.#actions.push(action);
    return async () => {
      const index = this.#actions.indexOf(action);
      if (index < 0) return;
      this.#actions.splice(index, 1);
      await action.run();
    };
  }

  /** Runs every remaining action, newest first, carrying on past failures; returns one sentence per failure. */
  async runAll(): Promise<string[]> {
    const failures: string[] = [];
    while (this.#actions.length > 0) {
      const action = this.#actions.pop();
      if (!action) break;
      try {
        await action.run();
      } catch (error) {
        failures.push(`${action.label}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return failures;
  }
}
