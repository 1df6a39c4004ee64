// Pure validation of CSI Node requests: each turns a decoded request into the values a handler acts on, or throws the
// spec's code with a sentence (what was refused, why, what to do). No I/O here, so the table test covers every case.
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { CsiError, invalidArgument } from "../errors.ts";
import { decodePublishContext, PUBLISH_CONTEXT_KEYS, type NbdPublishContext } from "../publish-context.ts";
import type {
  AccessModeName,
  NodeExpandVolumeRequest,
  NodeGetVolumeStatsRequest,
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
  VolumeCapability,
} from "./types.ts";

/** Filesystems NodeStageVolume formats and mounts; an empty fs_type means "whatever is there, else ext4". */
export const SUPPORTED_FS_TYPES = ["ext4", "xfs"] as const;
export type FsType = (typeof SUPPORTED_FS_TYPES)[number];

/** How a volume is presented: a filesystem (fsType "" = keep what is there, else ext4) or the raw block device. */
export type AccessSpec = { kind: "mount"; fsType: FsType | ""; mountFlags: string[] } | { kind: "block" };

/** A validated volume capability. */
export interface CapabilitySpec {
  access: AccessSpec;
  mode: AccessModeName;
  /** True for the reader-only access modes: the volume is staged and published read-only. */
  readOnly: boolean;
}

/** A validated NodeStageVolume. */
export interface StageSpec extends CapabilitySpec {
  volumeId: string;
  stagingTargetPath: string;
  connection: NbdPublishContext;
}

/** A validated NodePublishVolume. */
export interface PublishSpec extends CapabilitySpec {
  volumeId: string;
  stagingTargetPath: string;
  targetPath: string;
}

/** A validated NodeExpandVolume; 0 bytes means "not given". */
export interface ExpandSpec {
  volumeId: string;
  volumePath: string;
  requiredBytes: number;
  limitBytes: number;
}

const ACCESS_MODES: readonly AccessModeName[] = [
  "SINGLE_NODE_WRITER",
  "SINGLE_NODE_READER_ONLY",
  "MULTI_NODE_READER_ONLY",
  "MULTI_NODE_SINGLE_WRITER",
  "MULTI_NODE_MULTI_WRITER",
  "SINGLE_NODE_SINGLE_WRITER",
  "SINGLE_NODE_MULTI_WRITER",
];
const READ_ONLY_MODES: readonly AccessModeName[] = ["SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"];
/** Modes that let another node write: a filesystem such as ext4 or xfs would be corrupted by two writing nodes. */
const MULTI_NODE_WRITER_MODES: readonly AccessModeName[] = ["MULTI_NODE_SINGLE_WRITER", "MULTI_NODE_MULTI_WRITER"];

/** Longest volume id and path accepted (CSI asks plugins to take at least 128 bytes of id; Linux paths stop at 4096). */
const MAX_ID_BYTES = 1024;
const MAX_PATH_BYTES = 4096;

/** A required, bounded string field. */
export function requireId(value: string | undefined, rpc: string, field: string): string {
  if (value === undefined || value === "") throw invalidArgument(`${rpc} needs ${field}; the request left it empty. Pass the volume's id.`);
  if (Buffer.byteLength(value) > MAX_ID_BYTES) {
    throw invalidArgument(`${rpc} refused ${field} of ${Buffer.byteLength(value)} bytes: at most ${MAX_ID_BYTES} bytes are accepted.`);
  }
  return value;
}

/** A required absolute path field, normalized. */
export function requirePath(value: string | undefined, rpc: string, field: string, code: status = status.INVALID_ARGUMENT): string {
  if (value === undefined || value === "") throw new CsiError(code, `${rpc} needs ${field}; the request left it empty. Pass an absolute path.`);
  if (!path.isAbsolute(value) || value.includes("\0")) {
    throw new CsiError(status.INVALID_ARGUMENT, `${rpc} refused ${field} "${value}": it must be an absolute path without NUL bytes.`);
  }
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) {
    throw invalidArgument(`${rpc} refused ${field} of ${Buffer.byteLength(value)} bytes: Linux paths are at most ${MAX_PATH_BYTES} bytes.`);
  }
  const normalized = path.normalize(value);
  return normalized.length > 1 ? normalized.replace(/\/+$/, "") : normalized;
}

/** Validates a volume capability for the node: access type, access mode, fs type and mount flags. */
export function validateCapability(capability: VolumeCapability | null | undefined, rpc: string, volumeId: string): CapabilitySpec {
  if (!capability) throw invalidArgument(`${rpc} for ${volumeId} needs volume_capability; the request had none. Pass the mount or block capability of the volume.`);
  const mode = capability.accessMode?.mode;
  if (mode === undefined || mode === "" || mode === "UNKNOWN") {
    throw invalidArgument(`${rpc} for ${volumeId} needs volume_capability.access_mode; it was unset or UNKNOWN. Pass one of ${ACCESS_MODES.join(", ")}.`);
  }
  if (!ACCESS_MODES.includes(mode as AccessModeName)) {
    throw invalidArgument(`${rpc} for ${volumeId} refused access mode "${mode}": it is not a CSI access mode. Pass one of ${ACCESS_MODES.join(", ")}.`);
  }
  const accessMode = mode as AccessModeName;
  const readOnly = READ_ONLY_MODES.includes(accessMode);
  const kind = capability.accessType ?? (capability.mount ? "mount" : capability.block ? "block" : undefined);
  if (kind === "block") return { access: { kind: "block" }, mode: accessMode, readOnly };
  if (kind !== "mount" || !capability.mount) {
    throw invalidArgument(`${rpc} for ${volumeId} needs volume_capability.mount or volume_capability.block; neither was set.`);
  }
  if (MULTI_NODE_WRITER_MODES.includes(accessMode)) {
    throw new CsiError(
      status.FAILED_PRECONDITION,
      `${rpc} for ${volumeId} refused access mode ${accessMode} with a filesystem: ext4 and xfs are not cluster filesystems, and two nodes writing would corrupt them. Use a single-node or reader-only mode, or a block volume.`,
    );
  }
  const fsType = (capability.mount.fsType ?? "").toLowerCase();
  if (fsType !== "" && !(SUPPORTED_FS_TYPES as readonly string[]).includes(fsType)) {
    throw invalidArgument(`${rpc} for ${volumeId} refused fs_type "${capability.mount.fsType}": esan formats and mounts ${SUPPORTED_FS_TYPES.join(" and ")} only.`);
  }
  const mountFlags = capability.mount.mountFlags ?? [];
  for (const flag of mountFlags) {
    if (flag === "" || /[\s\0]/.test(flag)) {
      throw invalidArgument(`${rpc} for ${volumeId} refused mount flag ${JSON.stringify(flag)}: a flag is one non-empty word such as noatime or discard.`);
    }
    if (/^(bind|rbind|remount|move|make-\w+)$/.test(flag)) {
      throw invalidArgument(`${rpc} for ${volumeId} refused mount flag "${flag}": it changes how the plugin mounts, not the filesystem. Remove it.`);
    }
  }
  return { access: { kind: "mount", fsType: fsType as FsType | "", mountFlags: [...mountFlags] }, mode: accessMode, readOnly };
}

export function validateStage(request: NodeStageVolumeRequest): StageSpec {
  const rpc = "NodeStageVolume";
  const volumeId = requireId(request.volumeId, rpc, "volume_id");
  const stagingTargetPath = requirePath(request.stagingTargetPath, rpc, "staging_target_path");
  const capability = validateCapability(request.volumeCapability, rpc, volumeId);
  const decoded = decodePublishContext(request.publishContext);
  if ("missing" in decoded) {
    throw invalidArgument(
      `${rpc} for ${volumeId} needs the NBD attachment in publish_context, but ${decoded.missing.join(", ")} ${decoded.missing.length === 1 ? "is" : "are"} missing. ControllerPublishVolume returns them; pass its publish_context unchanged.`,
    );
  }
  if (!/^[0-9a-fA-F]{64}$/.test(decoded.pskKey)) {
    // Never echo the value: it is the secret.
    throw invalidArgument(`${rpc} for ${volumeId} refused publish_context ${PUBLISH_CONTEXT_KEYS.pskKey}: it must be 64 hex digits. Publish the volume again.`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(decoded.pskIdentity)) {
    throw invalidArgument(`${rpc} for ${volumeId} refused publish_context ${PUBLISH_CONTEXT_KEYS.pskIdentity} "${decoded.pskIdentity}": an identity is letters, digits, dot, dash and underscore.`);
  }
  if (!/^nbds(\+unix)?:\/\//.test(decoded.nbdUri)) {
    throw invalidArgument(`${rpc} for ${volumeId} refused publish_context ${PUBLISH_CONTEXT_KEYS.nbdUri} "${decoded.nbdUri}": esan connects only with TLS, so it must start with nbds:// or nbds+unix://.`);
  }
  return { volumeId, stagingTargetPath, ...capability, connection: decoded };
}

export function validateUnstage(request: NodeUnstageVolumeRequest): { volumeId: string; stagingTargetPath: string } {
  const rpc = "NodeUnstageVolume";
  return { volumeId: requireId(request.volumeId, rpc, "volume_id"), stagingTargetPath: requirePath(request.stagingTargetPath, rpc, "staging_target_path") };
}

export function validatePublish(request: NodePublishVolumeRequest): PublishSpec {
  const rpc = "NodePublishVolume";
  const volumeId = requireId(request.volumeId, rpc, "volume_id");
  const targetPath = requirePath(request.targetPath, rpc, "target_path");
  const capability = validateCapability(request.volumeCapability, rpc, volumeId);
  // The spec's code when a plugin with STAGE_UNSTAGE_VOLUME gets no staging path.
  const stagingTargetPath = requirePath(request.stagingTargetPath, rpc, "staging_target_path (esan stages volumes first)", status.FAILED_PRECONDITION);
  if (stagingTargetPath === targetPath) {
    throw invalidArgument(`${rpc} for ${volumeId} refused target_path ${targetPath}: it is the staging path itself. Pass a path of its own.`);
  }
  return { volumeId, targetPath, stagingTargetPath, ...capability, readOnly: capability.readOnly || request.readonly === true };
}

export function validateUnpublish(request: NodeUnpublishVolumeRequest): { volumeId: string; targetPath: string } {
  const rpc = "NodeUnpublishVolume";
  return { volumeId: requireId(request.volumeId, rpc, "volume_id"), targetPath: requirePath(request.targetPath, rpc, "target_path") };
}

/**
 * A volume_path of stats or expand: required, but a path that is not absolute is reported by the handler as NOT_FOUND
 * (no volume is there), as csi-sanity expects, rather than refused as malformed.
 */
function requireVolumePath(value: string | undefined, rpc: string): string {
  if (value === undefined || value === "") throw invalidArgument(`${rpc} needs volume_path; the request left it empty. Pass the staging or publish path of the volume.`);
  return path.isAbsolute(value) && !value.includes("\0") ? requirePath(value, rpc, "volume_path") : value;
}

export function validateStats(request: NodeGetVolumeStatsRequest): { volumeId: string; volumePath: string } {
  const rpc = "NodeGetVolumeStats";
  return { volumeId: requireId(request.volumeId, rpc, "volume_id"), volumePath: requireVolumePath(request.volumePath, rpc) };
}

export function validateExpand(request: NodeExpandVolumeRequest): ExpandSpec {
  const rpc = "NodeExpandVolume";
  const volumeId = requireId(request.volumeId, rpc, "volume_id");
  const volumePath = requireVolumePath(request.volumePath, rpc);
  const requiredBytes = request.capacityRange?.requiredBytes ?? 0;
  const limitBytes = request.capacityRange?.limitBytes ?? 0;
  if (!Number.isSafeInteger(requiredBytes) || requiredBytes < 0 || !Number.isSafeInteger(limitBytes) || limitBytes < 0) {
    throw invalidArgument(`${rpc} for ${volumeId} refused capacity_range ${requiredBytes}..${limitBytes}: sizes are whole, non-negative byte counts.`);
  }
  if (limitBytes > 0 && requiredBytes > limitBytes) {
    throw invalidArgument(`${rpc} for ${volumeId} refused capacity_range: required_bytes ${requiredBytes} is more than limit_bytes ${limitBytes}.`);
  }
  if (request.volumeCapability) validateCapability(request.volumeCapability, rpc, volumeId);
  return { volumeId, volumePath, requiredBytes, limitBytes };
}
