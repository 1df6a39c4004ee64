// NodeGetVolumeStats and NodeExpandVolume: both first find the staged volume at the path they are given (the staging
// path or one of its publications), NOT_FOUND otherwise, as the spec and csi-sanity expect.
import fs from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { CsiError } from "../errors.ts";
import { disconnect, exportSizeBytes, probeLink, type NodeContext } from "./attachment.ts";
import { filesystemUsage, growFilesystem, growUnmountedExt4, isResizePermissionError } from "./filesystem.ts";
import { blockDeviceBytes } from "./loop-device.ts";
import { mountAt, unmount } from "./mounts.ts";
import { isPublicationOf } from "./publish.ts";
import { blockStagingFile, deviceNumberOf, ensureStaged, isDeviceBindOf, publications } from "./stage.ts";
import type { StagingRecord } from "./staging-store.ts";
import type { NodeGetVolumeStatsResponse } from "./types.ts";
import type { ExpandSpec } from "./validate.ts";

/** The staged record of `volumeId` when `volumePath` is its staging path or a publication of it; NOT_FOUND otherwise. */
export function findStagedAt(context: NodeContext, rpc: string, volumeId: string, volumePath: string): StagingRecord & { device: string } {
  const record = context.store.get(volumeId);
  if (!record || record.device === null) {
    throw new CsiError(status.NOT_FOUND, `${rpc}: volume ${volumeId} is not staged on this node. Stage and publish it first.`);
  }
  const notHere = () => new CsiError(status.NOT_FOUND, `${rpc}: volume ${volumeId} is not at ${volumePath}; it is staged at ${record.stagingTargetPath}. Pass its staging path or a path it is published at.`);
  if (!path.isAbsolute(volumePath) || !fs.existsSync(volumePath)) throw notHere();
  const device = record.device;
  const isStaging =
    record.access.kind === "mount"
      ? volumePath === record.stagingTargetPath && mountAt(volumePath)?.majorMinor === deviceNumberOf(device)
      : (volumePath === record.stagingTargetPath || volumePath === blockStagingFile(record.stagingTargetPath)) && isDeviceBindOf(blockStagingFile(record.stagingTargetPath), device);
  if (!isStaging && !isPublicationOf(record, volumePath)) throw notHere();
  return { ...record, device };
}

/** NodeGetVolumeStats: bytes and inodes of the filesystem (or the size of a block device), and whether the NBD link answers. */
export async function volumeStats(context: NodeContext, volumeId: string, volumePath: string): Promise<NodeGetVolumeStatsResponse> {
  const record = findStagedAt(context, "NodeGetVolumeStats", volumeId, volumePath);
  const usage =
    record.access.kind === "mount" ? filesystemUsage(volumePath) : [{ unit: "BYTES" as const, total: blockDeviceBytes(record.device), available: 0, used: 0 }];
  const down = await probeLink(record);
  return {
    usage,
    volumeCondition: down === undefined ? { abnormal: false, message: "The NBD link answers." } : { abnormal: true, message: `The NBD link is down: ${down}. Writes to the volume fail until it is unstaged and staged again.` },
  };
}

/**
 * NodeExpandVolume: grows the filesystem to the volume's size on the SAN. nbdfuse reads the export size once, at
 * connect, so a volume that grew on the SAN after staging is reconnected first; that swaps the block device, which
 * is only possible while no publication holds the filesystem. When one does, the refusal is FAILED_PRECONDITION, the
 * spec's code for "cannot expand while published", and kubelet completes the expansion at the next stage.
 */
export async function expandVolume(context: NodeContext, spec: ExpandSpec): Promise<number> {
  const record = findStagedAt(context, "NodeExpandVolume", spec.volumeId, spec.volumePath);
  const deviceBytes = blockDeviceBytes(record.device);
  const sanBytes = (await exportSizeBytes(context, record)) ?? deviceBytes;
  if (spec.requiredBytes > sanBytes) {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `Cannot expand volume ${spec.volumeId} on the node to ${spec.requiredBytes} bytes: the SAN volume has ${sanBytes} bytes. Expand it with ControllerExpandVolume first.`,
    );
  }
  let current: StagingRecord & { device: string } = record;
  if (sanBytes > deviceBytes) {
    const inUse = publications(record);
    if (inUse.length > 0) {
      throw new CsiError(
        status.FAILED_PRECONDITION,
        `Cannot expand volume ${spec.volumeId} while it is published (at ${inUse.join(", ")}): the node sees ${deviceBytes} bytes because nbdfuse reads the size only when it connects, and reconnecting swaps the block device under the mounted filesystem. Stop the pods using it; the expansion completes when it is staged again.`,
      );
    }
    context.logger.info({ volumeId: spec.volumeId, deviceBytes, sanBytes }, "the volume grew on the SAN; reconnecting to see the new size");
    if (record.access.kind === "mount") await unmount(record.stagingTargetPath);
    else await unmount(blockStagingFile(record.stagingTargetPath));
    await disconnect(record);
    const fresh: StagingRecord = { ...record, attachment: null, device: null };
    context.store.save(fresh);
    await ensureStaged(context, fresh);
    if (fresh.device === null) throw new Error(`Reconnecting ${spec.volumeId} left it without a device.`);
    current = { ...fresh, device: fresh.device };
  }
  if (current.access.kind === "mount") await grow(context, current);
  return blockDeviceBytes(current.device);
}

/**
 * Grows the staged filesystem online. Online ext4 growth needs CAP_SYS_RESOURCE; a plugin without it grows an
 * unpublished ext4 offline instead (unmount, e2fsck, resize2fs, mount), and refuses a published one with a sentence.
 */
async function grow(context: NodeContext, record: StagingRecord & { device: string }): Promise<void> {
  const fsType = record.fsType ?? "ext4";
  try {
    await growFilesystem(fsType, record.device, record.stagingTargetPath);
  } catch (error) {
    if (fsType !== "ext4" || !isResizePermissionError(error)) throw error;
    const inUse = publications(record);
    if (inUse.length > 0) {
      throw new CsiError(
        status.FAILED_PRECONDITION,
        `Cannot grow the ext4 filesystem of volume ${record.volumeId} while it is published (at ${inUse.join(", ")}): online ext4 resize needs CAP_SYS_RESOURCE, which this node plugin lacks. Run the plugin privileged, or stop the pods using it; the expansion completes when it is staged again.`,
        { cause: error },
      );
    }
    context.logger.info({ volumeId: record.volumeId }, "online ext4 resize is not permitted here (no CAP_SYS_RESOURCE); growing it unmounted");
    await unmount(record.stagingTargetPath);
    await growUnmountedExt4(record.device);
    await ensureStaged(context, record);
  }
}
