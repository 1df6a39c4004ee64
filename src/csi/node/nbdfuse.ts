// The userspace NBD path: nbdfuse exposes the export as a file, with nbdkit's nbd plugin (`--command nbdkit -s`) as
// the TLS-PSK client, because nbdfuse 1.14 refuses the `tls-psk-file` URI parameter (libnbd forbids local file access
// in URIs unless the program allows it, and nbdfuse does not). The key file path is on the command line; the key never is.
//
// Lifetime: nbdfuse runs in a session of its own (setsid) with its output in a log file, so it outlives the plugin
// process. Killing or upgrading the plugin therefore never cuts the data path under a mounted filesystem; the
// restarted plugin finds nbdfuse again by pid and start time. Were nbdfuse a plain child, a plugin crash would abort
// the FUSE connection, and the loop device over it could never be pointed elsewhere (LOOP_CHANGE_FD only works on
// read-only loops, and this kernel has no device-mapper to swap under the filesystem).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseEndpoint } from "../../san/endpoints.ts";
import { pollUntil, runTool } from "./commands.ts";
import { isMountPoint } from "./mounts.ts";
import { isSameProcessAlive, killGroup, readProcStat } from "./processes.ts";
import type { ConnectionRecord } from "./staging-store.ts";

/** A running nbdfuse: where its file is, and how to recognise the process. */
export interface NbdfuseProcess {
  fuseDir: string;
  diskFile: string;
  pid: number;
  startTime: number;
}

/** Options of startNbdfuse. */
export interface StartNbdfuseOptions {
  /** The volume's private directory: holds the FUSE mount point, the pid file and the log. */
  volumeDir: string;
  connection: ConnectionRecord;
  /** File holding `IDENTITY:HEXKEY` (0600). */
  pskFile: string;
  readOnly: boolean;
  /** How long to wait for nbdfuse to serve (default 30 s). */
  timeoutMs?: number;
}

/** nbdkit's nbd plugin parameters for the attachment: where to connect, which export, TLS-PSK required. */
export function nbdkitClientArgs(connection: ConnectionRecord, pskFile: string): string[] {
  const endpoint = parseEndpoint(connection.nbdAddress, "publish_context NBD address");
  const where = endpoint.kind === "unix" ? [`socket=${endpoint.path}`] : [`hostname=${endpoint.host}`, `port=${endpoint.port}`];
  return [...where, `export=${connection.exportName}`, "tls=require", `tls-psk=${pskFile}`, `tls-username=${connection.pskIdentity}`];
}

/** The tail of nbdfuse's log, for error messages (it never contains the key: nbdkit does not print it). */
export function nbdfuseLogTail(volumeDir: string): string {
  try {
    return fs.readFileSync(path.join(volumeDir, "nbdfuse.log"), "utf8").trim().split("\n").slice(-4).join(" / ");
  } catch {
    return "";
  }
}

/** Starts nbdfuse for the attachment in its own session and resolves once it serves the file. */
export async function startNbdfuse(options: StartNbdfuseOptions): Promise<NbdfuseProcess> {
  const fuseDir = path.join(options.volumeDir, "fuse");
  const diskFile = path.join(fuseDir, "disk");
  const pidFile = path.join(options.volumeDir, "nbdfuse.pid");
  fs.mkdirSync(fuseDir, { recursive: true, mode: 0o700 });
  fs.rmSync(pidFile, { force: true });
  const log = fs.openSync(path.join(options.volumeDir, "nbdfuse.log"), "a", 0o600);
  const args = [
    "-P",
    pidFile,
    ...(options.readOnly ? ["-r"] : []),
    diskFile,
    "--command",
    "nbdkit",
    "-s",
    "--exit-with-parent",
    "nbd",
    ...nbdkitClientArgs(options.connection, options.pskFile),
  ];
  let exited: string | undefined;
  const child = spawn("nbdfuse", args, { detached: true, stdio: ["ignore", log, log] });
  fs.closeSync(log);
  child.once("exit", (code, signal) => (exited = signal ? `was killed by ${signal}` : `exited with ${code}`));
  child.once("error", (error) => (exited = `could not start (${error.message})`));
  child.unref();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ready = await pollUntil(() => exited !== undefined || (fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== ""), timeoutMs);
  const pid = child.pid;
  if (exited !== undefined || !ready || pid === undefined) {
    if (pid !== undefined && exited === undefined) killGroup(pid, "SIGKILL");
    await runTool("fusermount3", ["-u", "-z", fuseDir]).catch(() => undefined);
    const detail = nbdfuseLogTail(options.volumeDir);
    throw new Error(`nbdfuse ${exited ?? `did not serve within ${timeoutMs} ms`} for ${options.connection.exportName} at ${options.connection.nbdAddress}${detail ? `: ${detail}` : ""}`);
  }
  const stat = readProcStat(pid);
  if (!stat) throw new Error(`nbdfuse (pid ${pid}) vanished right after it started serving ${options.connection.exportName}.`);
  return { fuseDir, diskFile, pid, startTime: stat.startTime };
}

/** Whether the recorded nbdfuse still runs and still serves its file (an adopted process after a plugin restart). */
export function isNbdfuseServing(helper: NbdfuseProcess): boolean {
  return isSameProcessAlive(helper.pid, helper.startTime) && isMountPoint(helper.fuseDir) && fs.existsSync(helper.diskFile);
}

/**
 * Stops nbdfuse the way its manual asks, by unmounting its FUSE mount (it then exits by itself); kills its session
 * and unmounts lazily if that fails. Safe to repeat, and on a process that has already died.
 */
export async function stopNbdfuse(helper: NbdfuseProcess, timeoutMs = 10_000): Promise<void> {
  const alive = () => isSameProcessAlive(helper.pid, helper.startTime);
  if (isMountPoint(helper.fuseDir)) {
    const unmounted = await pollUntil(async () => (await runTool("fusermount3", ["-u", helper.fuseDir])).code === 0 || !isMountPoint(helper.fuseDir), timeoutMs, 250);
    if (!unmounted) await runTool("fusermount3", ["-u", "-z", helper.fuseDir]);
  }
  if (!(await pollUntil(() => !alive(), timeoutMs))) {
    killGroup(helper.pid, "SIGKILL");
    await pollUntil(() => !alive(), timeoutMs);
  }
  if (isMountPoint(helper.fuseDir)) await runTool("fusermount3", ["-u", "-z", helper.fuseDir]);
}

/**
 * Whether the NBD link answers: one direct (uncached) read through nbdfuse, in a child process with a timeout so a hung
 * link cannot hang the plugin. Resolves undefined when healthy, else the reason.
 */
export async function probeNbdfuseLink(helper: NbdfuseProcess, timeoutMs = 10_000): Promise<string | undefined> {
  if (!isSameProcessAlive(helper.pid, helper.startTime)) return `nbdfuse (pid ${helper.pid}) is no longer running`;
  if (!isMountPoint(helper.fuseDir)) return `the nbdfuse mount ${helper.fuseDir} is gone`;
  const read = await runTool("dd", [`if=${helper.diskFile}`, "of=/dev/null", "bs=4096", "count=1", "iflag=direct", "status=none"], timeoutMs);
  if (read.code === 0) return undefined;
  if (read.code === null) return `a read through nbdfuse did not finish within ${timeoutMs} ms`;
  return `a read through nbdfuse failed: ${read.stderr.trim().split("\n").at(-1) ?? ""}`;
}
