// NodePublishVolume and NodeUnpublishVolume: bind mounts of the staging into a pod's target path. A filesystem is
// bound (then remounted read-only when asked); a block volume's device file is bound onto a file. A read-only block
// publication of a writable staging gets a read-only loop device stacked on the staged one, because a read-only bind
// mount does not stop writes to a device node.
import fs from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { CsiError } from "../errors.ts";
import type { NodeContext } from "./attachment.ts";
import { attachLoop, detachLoop } from "./loop-device.ts";
import { bindMount, isMountPoint, majorMinorOf, mountAt, unmount } from "./mounts.ts";
import { blockStagingFile, deviceNumberOf, stackedLoopBacking } from "./stage.ts";
import type { StagingRecord } from "./staging-store.ts";
import type { PublishSpec } from "./validate.ts";

/** Whether the mount at `target` is a publication of the staged volume (same filesystem, or the same or a stacked device). */
export function isPublicationOf(record: StagingRecord, target: string): boolean {
  const device = record.device;
  if (device === null || !isMountPoint(target)) return false;
  try {
    const deviceNumber = deviceNumberOf(device);
    if (record.access.kind === "mount") return mountAt(target)?.majorMinor === deviceNumber;
    const held = majorMinorOf(fs.statSync(target).rdev);
    return held === deviceNumber || stackedLoopBacking(held) === device;
  } catch {
    return false;
  }
}

/** Removes what publish created at `target`: an empty directory or an empty file; anything else is left alone. */
function removeTarget(target: string): void {
  let stats: fs.Stats;
  try {
    stats = fs.lstatSync(target);
  } catch {
    return;
  }
  try {
    if (stats.isDirectory()) fs.rmdirSync(target);
    else if (stats.isFile() && stats.size === 0) fs.unlinkSync(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOTEMPTY") throw error;
  }
}

/** NodePublishVolume: bind-mounts the staged volume at the target path; succeeds when it is already published alike. */
export async function publishVolume(context: NodeContext, spec: PublishSpec): Promise<void> {
  const record = context.store.get(spec.volumeId);
  if (!record || record.stagingTargetPath !== spec.stagingTargetPath || record.device === null) {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `Cannot publish volume ${spec.volumeId}: it is not staged at ${spec.stagingTargetPath} on this node${record ? ` (it is staged at ${record.stagingTargetPath})` : ""}. Call NodeStageVolume first.`,
    );
  }
  if (record.access.kind !== spec.access.kind) {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `Cannot publish volume ${spec.volumeId} as a ${spec.access.kind === "block" ? "block device" : "filesystem"}: it is staged as a ${record.access.kind === "block" ? "block device" : "filesystem"}. Publish it with the capability it was staged with.`,
    );
  }
  if (record.readOnly && !spec.readOnly) {
    throw new CsiError(status.FAILED_PRECONDITION, `Cannot publish volume ${spec.volumeId} writable: it is staged read-only (access mode ${record.mode}). Publish it read-only.`);
  }
  const existing = mountAt(spec.targetPath);
  if (existing) {
    if (isPublicationOf(record, spec.targetPath) && existing.options.includes("ro") === spec.readOnly) return;
    throw new CsiError(
      status.ALREADY_EXISTS,
      `Cannot publish volume ${spec.volumeId} at ${spec.targetPath}${spec.readOnly ? " read-only" : ""}: ${isPublicationOf(record, spec.targetPath) ? `it is already published there ${spec.readOnly ? "writable" : "read-only"}` : "something else is mounted there"}. Unpublish it first or pass another target path.`,
    );
  }

  if (spec.access.kind === "mount") {
    fs.mkdirSync(spec.targetPath, { recursive: true, mode: 0o750 });
    await bindMount(spec.stagingTargetPath, spec.targetPath, spec.readOnly);
    context.logger.info({ volumeId: spec.volumeId, targetPath: spec.targetPath, readOnly: spec.readOnly }, "published the filesystem");
    return;
  }

  fs.mkdirSync(path.dirname(spec.targetPath), { recursive: true, mode: 0o750 });
  const created = !fs.existsSync(spec.targetPath);
  if (!created && fs.statSync(spec.targetPath).isDirectory()) fs.rmdirSync(spec.targetPath);
  fs.closeSync(fs.openSync(spec.targetPath, "a", 0o600));
  let readOnlyLoop: string | undefined;
  try {
    let source = blockStagingFile(record.stagingTargetPath);
    if (spec.readOnly && !record.readOnly) {
      readOnlyLoop = await attachLoop(record.device, true);
      source = readOnlyLoop;
    }
    await bindMount(source, spec.targetPath, spec.readOnly);
  } catch (error) {
    if (readOnlyLoop !== undefined) await detachLoop(readOnlyLoop).catch(() => undefined);
    removeTarget(spec.targetPath);
    throw error;
  }
  context.logger.info({ volumeId: spec.volumeId, targetPath: spec.targetPath, readOnly: spec.readOnly, readOnlyLoop }, "published the block device");
}

/** NodeUnpublishVolume: unmounts the target and removes it; succeeds when nothing is published there. */
export async function unpublishVolume(context: NodeContext, volumeId: string, targetPath: string): Promise<void> {
  if (!isMountPoint(targetPath)) {
    removeTarget(targetPath);
    return;
  }
  const record = context.store.get(volumeId);
  if (!record || !isPublicationOf(record, targetPath)) {
    throw new CsiError(
      status.NOT_FOUND,
      `Cannot unpublish volume ${volumeId} from ${targetPath}: what is mounted there is not that volume as staged on this node, so it was left alone. Check the volume id and target path.`,
    );
  }
  let stackedLoop: string | undefined;
  if (record.access.kind === "block") {
    const held = majorMinorOf(fs.statSync(targetPath).rdev);
    if (held !== deviceNumberOf(record.device ?? "")) stackedLoop = `/dev/${path.basename(fs.realpathSync(`/sys/dev/block/${held}`))}`;
  }
  await unmount(targetPath);
  if (stackedLoop !== undefined) await detachLoop(stackedLoop);
  removeTarget(targetPath);
  context.logger.info({ volumeId, targetPath }, "unpublished the volume");
}
