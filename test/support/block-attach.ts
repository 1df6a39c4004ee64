// Turning an NBD export into a mounted filesystem the way a node without the nbd kernel module does: nbdfuse exposes
// the export as a file, losetup makes that file a block device, mount puts a filesystem on it. Each step registers
// its undo on a CleanupStack the moment it succeeds, so a failing test leaves no mount, loop device or FUSE behind.
import fs from "node:fs";
import path from "node:path";

import { ChildServer, type CleanupStack, pause, runCommand, runOk, waitUntil } from "./block-process.ts";

/** Binaries the block-device test runs (Debian: libnbd-bin, fuse3, util-linux, e2fsprogs, mount). */
const BLOCK_TOOLS = ["nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "mount", "umount", "sync"];

/** What this machine lacks for the block-device test, one phrase each; empty when everything is there. */
export async function missingBlockPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push(`root (running as uid ${process.getuid?.()})`);
  if (!fs.existsSync("/dev/fuse")) missing.push("/dev/fuse (FUSE)");
  if (!fs.existsSync("/dev/loop-control")) missing.push("/dev/loop-control (loop devices)");
  for (const tool of BLOCK_TOOLS) {
    if ((await runCommand("sh", ["-c", `command -v ${tool}`])).code !== 0) missing.push(`the ${tool} command`);
  }
  return missing;
}

/** A block device backed by an NBD export: the loop device, and a release that detaches loop and FUSE. */
export interface AttachedDevice {
  device: string;
  release: () => Promise<void>;
}

/** `nbdfuse DIR/disk URI`, then `losetup -f --show DIR/disk`; both undone by `release` or by the cleanup stack. */
export async function attachNbdBlockDevice(uri: string, workDir: string, cleanup: CleanupStack): Promise<AttachedDevice> {
  const fuseDir = fs.mkdtempSync(path.join(workDir, "fuse-"));
  const pidFile = path.join(workDir, `${path.basename(fuseDir)}.pid`);
  const diskFile = path.join(fuseDir, "disk");
  const nbdfuse = new ChildServer("nbdfuse", "nbdfuse", ["-P", pidFile, diskFile, uri]);
  const releaseFuse = cleanup.add(`unmount nbdfuse at ${fuseDir}`, () => unmountFuse(fuseDir, nbdfuse));
  await waitUntil(
    () => {
      if (nbdfuse.exitStatus !== undefined) throw new Error(`nbdfuse ${nbdfuse.exitStatus} before serving ${uri}:\n${nbdfuse.output}`);
      return fs.existsSync(pidFile) && fs.existsSync(diskFile);
    },
    30_000,
    () => `nbdfuse did not serve ${uri} as ${diskFile} within 30 s:\n${nbdfuse.output}`,
  );
  const device = (await runOk("losetup", ["-f", "--show", diskFile])).trim();
  const releaseLoop = cleanup.add(`detach loop device ${device}`, () => detachLoop(device));
  return {
    device,
    release: async () => {
      await releaseLoop();
      await releaseFuse();
    },
  };
}

/** `losetup -d`, then waits until the kernel has really let go of the backing file (detach can be deferred). */
async function detachLoop(device: string): Promise<void> {
  const backing = `/sys/block/${path.basename(device)}/loop/backing_file`;
  if (!fs.existsSync(backing)) return;
  await runOk("losetup", ["-d", device]);
  await waitUntil(() => !fs.existsSync(backing), 20_000, () => `${device} still has a backing file 20 s after losetup -d.`);
}

/** `fusermount3 -u`, retried while the mount is busy; nbdfuse then exits by itself, or is killed by PID. */
async function unmountFuse(fuseDir: string, nbdfuse: ChildServer): Promise<void> {
  let lastError = "";
  for (let attempt = 0; attempt < 40 && isMountPoint(fuseDir); attempt++) {
    const result = await runCommand("fusermount3", ["-u", fuseDir], 20_000);
    if (result.code === 0) break;
    lastError = result.stderr.trim();
    await pause(250);
  }
  if (isMountPoint(fuseDir)) {
    await runCommand("fusermount3", ["-u", "-z", fuseDir], 20_000);
    await nbdfuse.stop(5_000);
    throw new Error(`fusermount3 -u ${fuseDir} kept failing (${lastError}); unmounted lazily and stopped nbdfuse.`);
  }
  if (!(await nbdfuse.waitForExit(10_000))) {
    await nbdfuse.stop(5_000);
    throw new Error(`nbdfuse did not exit within 10 s of unmounting ${fuseDir}; stopped it by PID.`);
  }
}

/** Whether `dir` is a mount point now, from /proc/self/mountinfo. */
export function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[4]?.replace(/\\040/g, " ") === target);
}

/** `mount -t ext4 DEVICE DIR`; `release` (or the cleanup stack) unmounts it, lazily if it stays busy. */
export async function mountExt4(device: string, dir: string, cleanup: CleanupStack): Promise<() => Promise<void>> {
  fs.mkdirSync(dir, { recursive: true });
  await runOk("mount", ["-t", "ext4", device, dir]);
  return cleanup.add(`unmount ${dir}`, async () => {
    for (let attempt = 0; attempt < 20 && isMountPoint(dir); attempt++) {
      if ((await runCommand("umount", [dir], 60_000)).code === 0) return;
      await pause(250);
    }
    if (isMountPoint(dir)) {
      await runCommand("umount", ["-l", dir], 20_000);
      throw new Error(`umount ${dir} kept failing; unmounted lazily.`);
    }
  });
}
