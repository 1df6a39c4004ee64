// Loop devices over the nbdfuse file: attach, find the backing file and size, detach and wait until the
// kernel has really let go (a detach of a busy device is deferred until its last user closes it).
import fs from "node:fs";
import path from "node:path";
import { pollUntil, runToolOk } from "./commands.ts";

/** `losetup -f --show FILE` (read-only with `-r`); resolves the new device, such as /dev/loop3. */
export async function attachLoop(file: string, readOnly: boolean): Promise<string> {
  const device = (await runToolOk("losetup", ["-f", "--show", ...(readOnly ? ["-r"] : []), file])).trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup attached ${file} but printed "${device}" instead of a loop device.`);
  return device;
}

/** The file behind a loop device, or undefined when the device is not attached (" (deleted)" is kept if the kernel shows it). */
export function loopBackingFile(device: string): string | undefined {
  try {
    return fs.readFileSync(`/sys/block/${path.basename(device)}/loop/backing_file`, "utf8").trim();
  } catch {
    return undefined;
  }
}


/** Size of a block device in bytes, from sysfs (sectors of 512 bytes whatever the logical sector size). */
export function blockDeviceBytes(device: string): number {
  const sectors = Number(fs.readFileSync(`/sys/block/${path.basename(device)}/size`, "utf8").trim());
  return sectors * 512;
}


/** `losetup -d`, then waits until the backing file is gone; no-op for a device that is not attached. */
export async function detachLoop(device: string, timeoutMs = 20_000): Promise<void> {
  if (loopBackingFile(device) === undefined) return;
  await runToolOk("losetup", ["-d", device]);
  if (!(await pollUntil(() => loopBackingFile(device) === undefined, timeoutMs))) {
    throw new Error(`Cannot detach ${device}: it still has a backing file ${timeoutMs} ms after losetup -d; something still holds it open.`);
  }
}

