// Running the host tools the node needs (mount, losetup, blkid, mkfs, resize2fs, fsfreeze …): always with a timeout,
// never through a shell, and never with a secret on the command line (argv is world-readable in /proc).
import { execFile } from "node:child_process";

/** What a finished command left behind. `code` is null when it was killed (timeout or signal). */
export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A host tool that could not run or exited non-zero; `message` names the command and its stderr. */
export class ToolError extends Error {
  readonly result: ToolResult | undefined;

  constructor(message: string, result?: ToolResult, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ToolError";
    this.result = result;
  }
}

/** Default time a tool may take before it is killed (mkfs of a large thin volume is the slowest; 2 minutes). */
export const DEFAULT_TOOL_TIMEOUT_MS = 120_000;

/** Runs `command args` and resolves whatever its exit status; rejects only when it cannot be started. */
export function runTool(command: string, args: readonly string[], timeoutMs = DEFAULT_TOOL_TIMEOUT_MS): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error && typeof error.code === "string") {
        reject(new ToolError(`Cannot run ${command}: ${error.message}. Is it installed and on PATH?`, undefined, { cause: error }));
        return;
      }
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command and resolves its stdout; throws a ToolError naming the command and its stderr unless it exits 0. */
export async function runToolOk(command: string, args: readonly string[], timeoutMs = DEFAULT_TOOL_TIMEOUT_MS): Promise<string> {
  const result = await runTool(command, args, timeoutMs);
  if (result.code !== 0) {
    const how = result.code === null ? `was killed after ${timeoutMs} ms` : `exited with ${result.code}`;
    const detail = (result.stderr || result.stdout).trim().split("\n").slice(-3).join(" / ");
    throw new ToolError(`\`${[command, ...args].join(" ")}\` ${how}${detail ? `: ${detail}` : ""}`, result);
  }
  return result.stdout;
}


/** Resolves after `ms` (used only between polls of the kernel or another process, never to wait for time itself). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` every `intervalMs` until it is true; resolves false if it is still false after `timeoutMs`. */
export async function pollUntil(done: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await pause(intervalMs);
  }
}
