// kubectl (and helm) against the local cluster only: every call names the cluster's kubeconfig explicitly, so nothing
// ever reaches another cluster from the user's environment.
import { execFile } from "node:child_process";

/** The result of one command. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (SIGKILL after `timeoutMs`) and resolves whatever its exit status. */
export function runCommand(command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 300_000, killSignal: "SIGKILL", env: options.env ?? process.env },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number" && !error.killed) {
          reject(new Error(`Cannot run ${command}: ${error.message}`, { cause: error }));
          return;
        }
        resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** kubectl with one kubeconfig. */
export class Kubectl {
  readonly command: string;
  readonly kubeconfig: string;

  constructor(command: string, kubeconfig: string) {
    this.command = command;
    this.kubeconfig = kubeconfig;
  }

  /** `kubectl ARGS`; resolves stdout, throws a sentence with stderr unless it exits 0. */
  async run(args: readonly string[], input?: string): Promise<string> {
    const result = await this.result(args, input);
    if (result.code !== 0) throw new Error(`\`kubectl ${args.join(" ")}\` exited with ${result.code}: ${(result.stderr || result.stdout).trim()}`);
    return result.stdout;
  }

  /** `kubectl ARGS`, whatever its exit status. */
  result(args: readonly string[], input?: string): Promise<CommandResult> {
    // The kubeconfig flag comes first and KUBECONFIG is dropped, so no other cluster is ever in reach.
    const env = { ...process.env };
    delete env.KUBECONFIG;
    return runCommand(this.command, [`--kubeconfig=${this.kubeconfig}`, ...args], { input, env });
  }
}
