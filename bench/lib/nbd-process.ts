// Long-running server processes of `npm run bench:nbd`: started with logs in files, awaited on their unix sockets,
// and stopped by PID, always, including when the bench fails or is interrupted.

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

import { commandLine, sleep } from "./nbd-common.ts";

const live = new Set<ServerProcess>();

/** One server child process; its stdout and stderr go to `logFile`. */
export class ServerProcess {
  readonly name: string;
  readonly logFile: string;
  readonly command: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #exitStatus: string | undefined;

  constructor(name: string, command: string, args: readonly string[], logFile: string, env: NodeJS.ProcessEnv = process.env) {
    this.name = name;
    this.logFile = logFile;
    this.command = commandLine(command, args);
    const log = fs.openSync(logFile, "a");
    try {
      this.#child = spawn(command, args, { stdio: ["ignore", log, log], env });
    } finally {
      fs.closeSync(log);
    }
    this.#exited = new Promise((resolve) => {
      this.#child.once("exit", (code, signal) => {
        this.#exitStatus = signal ? `killed by ${signal}` : `exited with ${code}`;
        live.delete(this);
        resolve();
      });
      this.#child.once("error", (error) => {
        this.#exitStatus = `could not start: ${error.message}`;
        live.delete(this);
        resolve();
      });
    });
    live.add(this);
  }

  /** The process id (valid while it runs). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** Why the process ended, or undefined while it runs. */
  get exitStatus(): string | undefined {
    return this.#exitStatus;
  }

  /** The last lines of the server's log, for error messages. */
  logTail(lines = 15): string {
    try {
      return fs.readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Waits until every path in `sockets` accepts a connection; throws if the server exits or `timeoutMs` passes. */
  async waitForSockets(sockets: readonly string[], timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const socket of sockets) {
      while (!(await canConnect(socket))) {
        if (this.#exitStatus !== undefined) throw new Error(`${this.name} ${this.#exitStatus} before listening on ${socket}:\n${this.logTail()}`);
        if (Date.now() > deadline) throw new Error(`${this.name} did not listen on ${socket} within ${timeoutMs} ms:\n${this.logTail()}`);
        await sleep(50);
      }
    }
  }

  /** SIGTERM, then SIGKILL if the process has not exited within `graceMs` (a server flushes and commits on SIGTERM). */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.#exitStatus !== undefined) return;
    this.#child.kill("SIGTERM");
    const timedOut = await Promise.race([this.#exited.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) {
      this.#child.kill("SIGKILL");
      await this.#exited;
    }
  }
}

/** Whether a unix socket at `socket` accepts a connection now (closed again at once). */
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

/** Stops every server still running, in parallel; used in `finally` and on SIGINT/SIGTERM. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((server) => server.stop(5_000)));
}

/** Stops every server and exits when the bench itself gets SIGINT or SIGTERM, so no server outlives it. */
export function stopServersOnSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`[bench:nbd] ${signal}: stopping ${live.size} server(s)\n`);
      void stopAllServers().finally(() => process.exit(130));
    });
  }
}
