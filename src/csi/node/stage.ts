// NodeStageVolume and NodeUnstageVolume, and the re-attach a restarted plugin runs for every recorded staging.
// Staging is one level-based routine, ensureStaged: it reads the world (helper process, loop device, mounts) and does
// only what is missing, so a repeated call, a retry after a half-done call and the recovery after a restart are the same code.
import fs from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { CsiError } from "../errors.ts";
import { connect, disconnect, isAttachmentHealthy, type NodeContext } from "./attachment.ts";
import { formatDevice, probeDevice, type DeviceContent } from "./filesystem.ts";
import { blockDeviceBytes } from "./loop-device.ts";
import { bindMount, isMountPoint, majorMinorOf, mount, mountAt, readMounts, unmount } from "./mounts.ts";
import type { StagingRecord } from "./staging-store.ts";
import { SUPPORTED_FS_TYPES, type FsType, type StageSpec } from "./validate.ts";

/** What to do with a staged device's content: mount the filesystem that is there, or format a blank device first. */
export type FilesystemDecision = { action: "mount" | "format"; fsType: FsType };

/**
 * Decides between mounting and formatting. Formats only a blank device; refuses anything else that is not a
 * filesystem esan mounts, and a filesystem of another type than the one asked for: esan never reformats data.
 */
export function decideFilesystem(content: DeviceContent, requested: FsType | "", readOnly: boolean, volumeId: string): FilesystemDecision {
  const refuse = (why: string) => new CsiError(status.FAILED_PRECONDITION, `Cannot stage volume ${volumeId}: ${why}`);
  switch (content.kind) {
    case "blank":
      if (readOnly) throw refuse("it is blank, and a read-only staging cannot format it. Stage it once with a writable access mode, or restore it from a snapshot that holds a filesystem.");
      return { action: "format", fsType: requested === "" ? "ext4" : requested };
    case "filesystem":
      if (!(SUPPORTED_FS_TYPES as readonly string[]).includes(content.type)) {
        throw refuse(`it holds a ${content.type} filesystem, and esan mounts only ${SUPPORTED_FS_TYPES.join(" and ")}. It was left untouched; use it as a block volume.`);
      }
      if (requested !== "" && content.type !== requested) {
        throw refuse(`it holds a ${content.type} filesystem but fs_type ${requested} was requested, and esan never reformats a volume with data. Request fs_type ${content.type} (or none).`);
      }
      return { action: "mount", fsType: content.type as FsType };
    case "other":
      throw refuse(`it holds ${content.what}, not a filesystem, and esan never formats a device with data on it. Use it as a block volume, or wipe it yourself.`);
    case "unknown-data":
      throw refuse("it is not blank (its first or last MiB holds data) but blkid finds no filesystem, and esan never formats a device with data on it. Use it as a block volume, or wipe it yourself.");
  }
}

/** Where a block volume's device file is bind-mounted inside its staging directory. */
export function blockStagingFile(stagingTargetPath: string): string {
  return path.join(stagingTargetPath, "device");
}

/** "MAJOR:MINOR" of a device node. */
export function deviceNumberOf(device: string): string {
  return majorMinorOf(fs.statSync(device).rdev);
}

/** Whether `file` is a mount point holding the device node `device` (a bind-mounted device file). */
export function isDeviceBindOf(file: string, device: string): boolean {
  try {
    return isMountPoint(file) && majorMinorOf(fs.statSync(file).rdev) === deviceNumberOf(device);
  } catch {
    return false;
  }
}

/** Mount points other than the staging itself that use the staged device: the volume's publications. */
export function publications(record: StagingRecord): string[] {
  const device = record.device;
  if (device === null || !fs.existsSync(device)) return [];
  const deviceNumber = deviceNumberOf(device);
  const mounts = readMounts();
  if (record.access.kind === "mount") {
    return mounts.filter((entry) => entry.majorMinor === deviceNumber && entry.mountPoint !== record.stagingTargetPath).map((entry) => entry.mountPoint);
  }
  // A block publication is a bind-mounted device node: of our device, or of a read-only loop device stacked on it.
  const stagedFile = blockStagingFile(record.stagingTargetPath);
  const result: string[] = [];
  for (const entry of mounts) {
    if (entry.mountPoint === stagedFile || !/\/loop\d+$/.test(entry.root)) continue;
    try {
      const held = majorMinorOf(fs.statSync(entry.mountPoint).rdev);
      if (held === deviceNumber || stackedLoopBacking(held) === device) result.push(entry.mountPoint);
    } catch {
      // Vanished meanwhile.
    }
  }
  return result;
}

/** For a loop device "MAJOR:MINOR", the file or device behind it. */
export function stackedLoopBacking(majorMinor: string): string | undefined {
  try {
    const name = path.basename(fs.realpathSync(`/sys/dev/block/${majorMinor}`));
    return fs.readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Unmounts what the staging put at its path (filesystem, or the bind-mounted device file, which is then removed). */
async function unmountStaging(record: StagingRecord): Promise<void> {
  if (record.access.kind === "mount") {
    await unmount(record.stagingTargetPath);
    return;
  }
  const file = blockStagingFile(record.stagingTargetPath);
  await unmount(file);
  fs.rmSync(file, { force: true });
}

/** How ensureStaged found the volume: its attachment still running, re-attached, or attached for the first time. */
export type StageOutcome = "adopted" | "reattached" | "attached";

/** Brings a recorded staging to its full state, doing only what is missing; saves the record after each step. */
export async function ensureStaged(context: NodeContext, record: StagingRecord): Promise<StageOutcome> {
  const log = context.logger.child({ volumeId: record.volumeId });
  let outcome: StageOutcome = "adopted";
  if (!isAttachmentHealthy(record)) {
    outcome = record.attachment ? "reattached" : "attached";
    if (record.attachment) {
      // The device under the staging is gone or half made. It can be replaced only when nothing above it is in use:
      // a block device cannot be swapped under a mounted filesystem (no device-mapper here, and LOOP_CHANGE_FD is read-only only).
      const inUse = publications(record);
      if (inUse.length > 0) {
        throw new CsiError(
          status.FAILED_PRECONDITION,
          `Cannot re-attach volume ${record.volumeId}: its NBD attachment is gone, and it is still published at ${inUse.join(", ")}, so its device cannot be replaced under the mounted filesystem. Stop the pods using it so it is unpublished and unstaged; the next stage reconnects.`,
        );
      }
      log.warn({ attachment: record.attachment }, "the recorded NBD attachment is gone; reconnecting");
      await unmountStaging(record);
      await disconnect(record);
      record.attachment = null;
      record.device = null;
      context.store.save(record);
    }
    const { attachment, device } = await connect(context, record);
    record.attachment = attachment;
    record.device = device;
    context.store.save(record);
  }
  const device = record.device;
  if (device === null) throw new Error(`The staging record of ${record.volumeId} has an attachment but no device.`);

  if (record.access.kind === "block") {
    const file = blockStagingFile(record.stagingTargetPath);
    if (!isDeviceBindOf(file, device)) {
      await unmount(file);
      fs.mkdirSync(record.stagingTargetPath, { recursive: true, mode: 0o750 });
      fs.closeSync(fs.openSync(file, "a", 0o600));
      await bindMount(device, file, false);
      log.info({ device, stagedAt: file }, "staged the block device");
    }
    return outcome;
  }

  const mounted = mountAt(record.stagingTargetPath);
  if (mounted) {
    if (mounted.majorMinor !== deviceNumberOf(device)) {
      throw new CsiError(
        status.ALREADY_EXISTS,
        `Cannot stage volume ${record.volumeId} at ${record.stagingTargetPath}: something else (${mounted.source}, ${mounted.fsType}) is mounted there. Unmount it or pass another staging path.`,
      );
    }
    if (record.fsType === null) {
      record.fsType = mounted.fsType;
      context.store.save(record);
    }
    return outcome;
  }
  const requested = record.access.fsType;
  const decision = decideFilesystem(await probeDevice(device, blockDeviceBytes(device)), requested, record.readOnly, record.volumeId);
  if (decision.action === "format") {
    log.info({ device, fsType: decision.fsType }, "the volume is blank; formatting it");
    await formatDevice(device, decision.fsType);
  }
  fs.mkdirSync(record.stagingTargetPath, { recursive: true, mode: 0o750 });
  // xfs refuses a second filesystem with the same UUID, which every clone of a snapshot has: nouuid lets clones mount side by side.
  const options = [...record.access.mountFlags, ...(decision.fsType === "xfs" ? ["nouuid"] : []), ...(record.readOnly ? ["ro"] : [])];
  await mount(["-t", decision.fsType, ...(options.length > 0 ? ["-o", options.join(",")] : []), device, record.stagingTargetPath]);
  record.fsType = decision.fsType;
  context.store.save(record);
  log.info({ device, fsType: decision.fsType, stagingTargetPath: record.stagingTargetPath }, "mounted the volume at its staging path");
  return outcome;
}

/** Whether an existing staging matches a new request for it (same path, access type, fs type, flags, read-only). */
function sameStaging(record: StagingRecord, spec: StageSpec): boolean {
  if (record.stagingTargetPath !== spec.stagingTargetPath || record.access.kind !== spec.access.kind || record.readOnly !== spec.readOnly) return false;
  if (record.access.kind === "mount" && spec.access.kind === "mount") {
    const sameFs = spec.access.fsType === "" || spec.access.fsType === (record.fsType ?? record.access.fsType);
    return sameFs && [...record.access.mountFlags].sort().join(",") === [...spec.access.mountFlags].sort().join(",");
  }
  return true;
}

/** NodeStageVolume: connects the export, formats a blank volume, mounts it (or stages the block device). */
export async function stageVolume(context: NodeContext, spec: StageSpec): Promise<void> {
  const { store } = context;
  const existing = store.get(spec.volumeId);
  const connection = {
    nbdUri: spec.connection.nbdUri,
    nbdAddress: spec.connection.nbdAddress,
    exportName: spec.connection.exportName,
    pskIdentity: spec.connection.pskIdentity,
  };
  if (existing) {
    if (!sameStaging(existing, spec)) {
      throw new CsiError(
        status.ALREADY_EXISTS,
        `Cannot stage volume ${spec.volumeId} at ${spec.stagingTargetPath} as ${describeStaging(spec)}: it is already staged at ${existing.stagingTargetPath} as ${describeStaging(existing)}. Unstage it first.`,
      );
    }
    // A newer publish may carry a new credential; it is used from the next connect on.
    store.writePsk(spec.volumeId, spec.connection.pskIdentity, spec.connection.pskKey);
    existing.connection = connection;
    store.save(existing);
    await ensureStaged(context, existing);
    return;
  }
  const record: StagingRecord = {
    version: 1,
    volumeId: spec.volumeId,
    stagingTargetPath: spec.stagingTargetPath,
    access: spec.access,
    mode: spec.mode,
    readOnly: spec.readOnly,
    connection,
    attachment: null,
    device: null,
    fsType: null,
    stagedAt: new Date().toISOString(),
  };
  // Recorded before anything is attached, so a crash half-way leaves a record that the restart or unstage cleans up.
  store.writePsk(spec.volumeId, spec.connection.pskIdentity, spec.connection.pskKey);
  store.save(record);
  try {
    await ensureStaged(context, record);
  } catch (error) {
    await rollBack(context, record).catch((rollbackError: unknown) =>
      context.logger.error({ volumeId: spec.volumeId, err: rollbackError }, "rolling back a failed stage left something behind"),
    );
    throw error;
  }
}

function describeStaging(staging: { access: StageSpec["access"]; readOnly: boolean }): string {
  const what = staging.access.kind === "block" ? "a block device" : `a ${staging.access.fsType || "default"} filesystem${staging.access.mountFlags.length > 0 ? ` (${staging.access.mountFlags.join(",")})` : ""}`;
  return `${what}${staging.readOnly ? ", read-only" : ""}`;
}

/** Undoes a first stage that failed half-way: unmount, detach, stop nbdfuse, forget the record and key. */
async function rollBack(context: NodeContext, record: StagingRecord): Promise<void> {
  const latest = context.store.get(record.volumeId) ?? record;
  await unmountStaging(latest);
  await disconnect(latest);
  context.store.remove(record.volumeId, isMountPoint);
}

/** NodeUnstageVolume: unmounts, detaches and forgets a staging; succeeds when nothing is staged there. */
export async function unstageVolume(context: NodeContext, volumeId: string, stagingTargetPath: string): Promise<void> {
  const record = context.store.get(volumeId);
  if (!record) return;
  if (record.stagingTargetPath !== stagingTargetPath) {
    context.logger.warn({ volumeId, stagingTargetPath, stagedAt: record.stagingTargetPath }, "unstage named a path where the volume is not staged; nothing to do");
    return;
  }
  const inUse = publications(record);
  if (inUse.length > 0) {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `Cannot unstage volume ${volumeId}: it is still published at ${inUse.join(", ")}, and detaching its device would cut the data path under them. Unpublish it first.`,
    );
  }
  await unmountStaging(record);
  await disconnect(record);
  context.store.remove(volumeId, isMountPoint);
  context.logger.info({ volumeId, stagingTargetPath }, "unstaged the volume");
}

/** Re-attaches every recorded staging (run before serving); a staging that cannot be re-attached is logged and left for unstage. */
export async function recoverStagings(context: NodeContext): Promise<Map<string, StageOutcome | Error>> {
  const results = new Map<string, StageOutcome | Error>();
  const records = context.store.list((file, error) => context.logger.error({ file, err: error }, "cannot read a staging record; skipping it"));
  for (const record of records) {
    try {
      const outcome = await ensureStaged(context, record);
      results.set(record.volumeId, outcome);
      context.logger.info({ volumeId: record.volumeId, outcome }, outcome === "adopted" ? "found the staging's NBD attachment still running" : "re-attached a recorded staging");
    } catch (error) {
      results.set(record.volumeId, error instanceof Error ? error : new Error(String(error)));
      context.logger.error({ volumeId: record.volumeId, err: error }, "cannot re-attach a recorded staging");
    }
  }
  return results;
}
