// Filesystems on a staged device: what is there (blkid, plus a look at the first and last MiB so data blkid does not
// recognise is never mistaken for a blank device), formatting only a blank device, growing, and usage via statfs.
import fs from "node:fs";
import { runTool, runToolOk } from "./commands.ts";
import type { FsType } from "./validate.ts";
import type { VolumeUsage } from "./types.ts";

/** What a device holds: nothing (all zeros where signatures live), a filesystem or other known signature, or unknown data. */
export type DeviceContent = { kind: "blank" } | { kind: "filesystem"; type: string } | { kind: "other"; what: string } | { kind: "unknown-data" };

/** Bytes at each end of a device that must read as zeros for it to count as blank: partition tables, superblocks, LVM and md labels live there. */
export const BLANK_PROBE_BYTES = 1024 * 1024;

/** Parses `blkid -p -o export` output into its KEY=VALUE pairs. */
export function parseBlkidExport(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) values[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return values;
}

/** Whether `length` bytes at `offset` of an open device are all zeros. */
function isZeroRange(fd: number, offset: number, length: number): boolean {
  const buffer = Buffer.alloc(Math.min(length, 64 * 1024));
  let done = 0;
  while (done < length) {
    const want = Math.min(buffer.length, length - done);
    const read = fs.readSync(fd, buffer, 0, want, offset + done);
    if (read <= 0) break;
    for (let i = 0; i < read; i++) if (buffer[i] !== 0) return false;
    done += read;
  }
  return true;
}

/** What `device` holds. Blank means blkid finds no signature and the first and last MiB are zeros. */
export async function probeDevice(device: string, sizeBytes: number): Promise<DeviceContent> {
  const result = await runTool("blkid", ["-p", "-o", "export", device]);
  if (result.code === 0) {
    const values = parseBlkidExport(result.stdout);
    if (values.TYPE) return { kind: "filesystem", type: values.TYPE };
    if (values.PTTYPE) return { kind: "other", what: `a ${values.PTTYPE} partition table` };
    return { kind: "other", what: "a signature blkid recognises" };
  }
  // blkid exits 2 when it finds nothing; anything else is a failure to probe, which must not read as "blank".
  if (result.code !== 2) throw new Error(`blkid -p ${device} failed (exit ${result.code}): ${result.stderr.trim()}`);
  const fd = fs.openSync(device, "r");
  try {
    const head = Math.min(BLANK_PROBE_BYTES, sizeBytes);
    const tailStart = Math.max(head, sizeBytes - BLANK_PROBE_BYTES);
    if (!isZeroRange(fd, 0, head) || !isZeroRange(fd, tailStart, sizeBytes - tailStart)) return { kind: "unknown-data" };
  } finally {
    fs.closeSync(fd);
  }
  return { kind: "blank" };
}

/** Makes a filesystem on a blank device; no discard pass, since a thin esan volume that is blank is already unallocated. */
export async function formatDevice(device: string, fsType: FsType): Promise<void> {
  if (fsType === "ext4") await runToolOk("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", device]);
  else await runToolOk("mkfs.xfs", ["-q", "-K", device]);
}

/** Grows a mounted filesystem to fill its device: resize2fs (ext4, on the device) or xfs_growfs (xfs, on the mount point). */
export async function growFilesystem(fsType: string, device: string, mountPoint: string): Promise<void> {
  if (fsType === "xfs") await runToolOk("xfs_growfs", [mountPoint]);
  else await runToolOk("resize2fs", [device]);
}

/** Whether a failed online resize2fs was refused for lack of CAP_SYS_RESOURCE (the EXT4_IOC_RESIZE_FS ioctl's EPERM). */
export function isResizePermissionError(error: unknown): boolean {
  return error instanceof Error && /Permission denied to resize filesystem/.test(error.message);
}

/** Grows an unmounted ext4: e2fsck -f -p first (resize2fs insists; exit 1 means it fixed something and is fine), then resize2fs. */
export async function growUnmountedExt4(device: string): Promise<void> {
  const check = await runTool("e2fsck", ["-f", "-p", device]);
  if (check.code !== 0 && check.code !== 1) {
    throw new Error(`Cannot grow the ext4 on ${device}: e2fsck -f -p exited with ${check.code} (${(check.stderr || check.stdout).trim().split("\n").at(-1) ?? ""}); check the filesystem by hand.`);
  }
  await runToolOk("resize2fs", [device]);
}

/** Bytes and inodes of the filesystem mounted at `dir`, from statfs. */
export function filesystemUsage(dir: string): VolumeUsage[] {
  const stats = fs.statfsSync(dir);
  return [
    { unit: "BYTES", total: stats.blocks * stats.bsize, available: stats.bavail * stats.bsize, used: (stats.blocks - stats.bfree) * stats.bsize },
    { unit: "INODES", total: stats.files, available: stats.ffree, used: stats.files - stats.ffree },
  ];
}
