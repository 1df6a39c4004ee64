// What a node plugin may leave on the host under a cluster's directory, and how to remove it: mounts (publications
// and stagings, then nbdfuse's FUSE mounts), loop devices, and nbdfuse/nbdkit processes, which run detached from the
// plugin by design (src/csi/node/README.md). The cluster first asks the plugin to unpublish and unstage; this sweep
// removes whatever remains, so stop() leaves nothing behind even after a failed test.
import { execFile } from "node:child_process";
import fs from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One mount from /proc/self/mountinfo. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  /** `MAJOR:MINOR` of the mounted device. */
  majorMinor: string;
}

/** Mounts at or below `root`, deepest first. */
export function mountsUnder(root: string): MountEntry[] {
  const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter((fields) => fields.length > 6)
    .map((fields) => ({ mountPoint: unescape(fields[4] ?? ""), fsType: fields[fields.indexOf("-") + 1] ?? "", majorMinor: fields[2] ?? "" }))
    .filter((entry) => entry.mountPoint === root || entry.mountPoint.startsWith(`${root}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

/** Loop devices backed by a file under `root`, and loop devices stacked on those (listed first). */
export function loopsUnder(root: string): string[] {
  const backing = new Map<string, string>();
  for (const name of fs.readdirSync("/sys/block").filter((n) => n.startsWith("loop"))) {
    try {
      backing.set(`/dev/${name}`, fs.readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").trim().replace(/ \(deleted\)$/, ""));
    } catch {
      // Not attached.
    }
  }
  const direct = [...backing].filter(([, file]) => file.startsWith(`${root}/`)).map(([device]) => device);
  const stacked = [...backing].filter(([, file]) => direct.includes(file)).map(([device]) => device);
  return [...stacked, ...direct];
}

/** Live nbdfuse and nbdkit processes whose command line names a path under `root`. */
export function nbdProcessesUnder(root: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmdline.includes(`${root}/`) && /(^|\/)(nbdfuse|nbdkit)\0/.test(cmdline)) pids.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Everything of a node plugin still present under `root`, one phrase each (empty when the host is clean). */
export function leftoversUnder(root: string): string[] {
  return [
    ...mountsUnder(root).map((m) => `${m.fsType.startsWith("fuse") ? "FUSE mount" : "mount"} ${m.mountPoint}`),
    ...loopsUnder(root).map((device) => `loop device ${device}`),
    ...nbdProcessesUnder(root).map((pid) => `nbdfuse/nbdkit process ${pid}`),
  ];
}

/**
 * Removes mounts, loop devices, FUSE mounts and nbdfuse/nbdkit processes under `root`, in that order; returns one
 * phrase per thing it removed.
 */
export async function sweepNodeLeftovers(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of mountsUnder(root).filter((e) => !e.fsType.startsWith("fuse"))) {
    removed.push(`mount ${entry.mountPoint}`);
    if (!(await succeeds("umount", [entry.mountPoint]))) await succeeds("umount", ["-l", entry.mountPoint]);
  }
  for (const device of loopsUnder(root)) {
    removed.push(`loop device ${device}`);
    await succeeds("losetup", ["-d", device]);
  }
  for (const entry of mountsUnder(root)) {
    removed.push(`FUSE mount ${entry.mountPoint}`);
    if (!(await succeeds("fusermount3", ["-u", entry.mountPoint]))) await succeeds("fusermount3", ["-u", "-z", entry.mountPoint]);
  }
  for (const pid of nbdProcessesUnder(root)) {
    removed.push(`nbdfuse/nbdkit process ${pid}`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  return removed;
}

async function succeeds(command: string, args: readonly string[]): Promise<boolean> {
  try {
    await run(command, args, { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}
