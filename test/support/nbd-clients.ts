// Running the real NBD clients (libnbd tools, nbdsh, qemu, fio) from tests, each killed if it overstays.
import { execFileSync, spawn } from "node:child_process";

/** What a client run produced. */
export interface ClientResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** nbdsh's Python module lives in the system python; a pyenv python earlier on PATH lacks it. */
export const CLIENT_ENV: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ""}`, LIBNBD_DEBUG: "0" };

/** Runs a command, kills it (SIGKILL) after `timeoutMs`, and resolves with its output. Never rejects on exit codes. */
export function runClient(command: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: CLIENT_ENV, stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => stdout.push(b));
    child.stderr.on("data", (b: Buffer) => stderr.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Like runClient, but throws with the output when the command fails. */
export async function runClientOk(command: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<ClientResult> {
  const result = await runClient(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return result;
}

/**
 * Runs a Python snippet in nbdsh connected to `uri` (the handle is `h`). The snippet's prologue connects itself so
 * that PSK URIs work (libnbd refuses tls-psk-file from `nbdsh -u`); `baseAllocation` asks for BLOCK_STATUS.
 */
export function nbdsh(uri: string, script: string, options: { timeoutMs?: number; baseAllocation?: boolean } = {}): Promise<ClientResult> {
  const prologue = [
    "h.set_uri_allow_local_file(True)",
    ...(options.baseAllocation ? ['h.add_meta_context("base:allocation")'] : []),
    `h.connect_uri(${JSON.stringify(uri)})`,
  ].join("\n");
  return runClient("nbdsh", ["-c", `${prologue}\n${script}`], { timeoutMs: options.timeoutMs ?? 30_000 });
}

/**
 * Checks the real clients a test file needs are installed. It fails (never skips) with the fix, because CI installs
 * everything through scripts/setup and a skipped interop test would hide a broken machine.
 */
export function requireClients(commands: string[]): void {
  const missing = commands.filter((command) => {
    try {
      execFileSync("sh", ["-c", `command -v ${command}`], { env: CLIENT_ENV, stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) throw new Error(`Missing NBD test clients: ${missing.join(", ")}. Run scripts/setup (npm run setup) to install them.`);
}
