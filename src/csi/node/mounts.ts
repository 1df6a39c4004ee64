// The node's view of mounts: /proc/self/mountinfo parsed (pure, tested on sample text) and the mount/umount calls the
// stage and publish steps make. Every call is safe to repeat: mounting what is mounted and unmounting what is not are no-ops.
import fs from "node:fs";
import { pollUntil, runTool, runToolOk } from "./commands.ts";

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  mountId: number;
  /** "MAJOR:MINOR" of the filesystem (for a bind-mounted device node: of the filesystem holding the node). */
  majorMinor: string;
  /** Path inside the filesystem that is mounted here ("/" for a whole filesystem). */
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
}

/** Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses the text of /proc/PID/mountinfo; malformed lines are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    if (dash < 6 || fields.length < dash + 3) continue;
    entries.push({
      mountId: Number(fields[0]),
      majorMinor: fields[2] ?? "",
      root: unescape(fields[3] ?? ""),
      mountPoint: unescape(fields[4] ?? ""),
      options: (fields[5] ?? "").split(","),
      fsType: fields[dash + 1] ?? "",
      source: unescape(fields[dash + 2] ?? ""),
    });
  }
  return entries;
}

/** The mounts of this process's mount namespace, now. */
export function readMounts(): MountEntry[] {
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo", "utf8"));
}

/** The topmost mount at `dir`, or undefined when `dir` is not a mount point. */
export function mountAt(dir: string, mounts: readonly MountEntry[] = readMounts()): MountEntry | undefined {
  return mounts.findLast((entry) => entry.mountPoint === dir);
}

/** Whether `dir` is a mount point now. */
export function isMountPoint(dir: string): boolean {
  return mountAt(dir) !== undefined;
}

/** "MAJOR:MINOR" of a device number as stat returns it. */
export function majorMinorOf(deviceNumber: number): string {
  // Linux's encoding (new_decode_dev): major in bits 8-19, minor in bits 0-7 and 20-31.
  const major = (deviceNumber >>> 8) & 0xfff;
  const minor = (deviceNumber & 0xff) | ((deviceNumber >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}

/** `mount ARGS`; a ToolError with mount's message on failure. */
export async function mount(args: readonly string[]): Promise<void> {
  await runToolOk("mount", args);
}

/**
 * Bind-mounts `source` at `target` (both exist), then makes the bind read-only when asked: a bind mount ignores `ro`
 * on the first call, so it takes a remount.
 */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await mount(["--bind", source, target]);
  if (!readOnly) return;
  try {
    await mount(["-o", "remount,bind,ro", target]);
  } catch (error) {
    await unmount(target);
    throw error;
  }
}

/**
 * Unmounts `dir` until nothing is mounted there (stacked mounts included), retrying while busy for `busyTimeoutMs`;
 * no-op when it is not a mount point. Throws a ToolError when it stays busy.
 */
export async function unmount(dir: string, busyTimeoutMs = 20_000): Promise<void> {
  let lastError = "";
  const done = await pollUntil(
    async () => {
      if (!isMountPoint(dir)) return true;
      const result = await runTool("umount", [dir]);
      if (result.code !== 0) lastError = result.stderr.trim();
      return !isMountPoint(dir);
    },
    busyTimeoutMs,
    250,
  );
  if (!done) throw new Error(`Cannot unmount ${dir}: umount kept failing for ${busyTimeoutMs} ms (${lastError}).`);
}
