// Which volume capabilities esan supports, as pure checks: a block device or an ext4/xfs filesystem, used by one node
// read-write or by any number of nodes read-only.
import { invalidArgument } from "./errors.ts";

/** A decoded csi.v1.VolumeCapability (proto-loader plain object, camelCase). */
export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fsType?: string; mountFlags?: string[]; volumeMountGroup?: string } | null;
  accessMode?: { mode?: string } | null;
  accessType?: string;
}

/** Access modes esan serves. A writer is always a single node: nothing coordinates writers on different nodes. */
export const SUPPORTED_ACCESS_MODES: readonly string[] = ["SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"];

/** Filesystems the node formats and grows; empty means the default, ext4. */
export const SUPPORTED_FS_TYPES: readonly string[] = ["ext4", "xfs"];

/** Access modes that let only one node use the volume at a time. */
export function isSingleNode(mode: string): boolean {
  return mode.startsWith("SINGLE_NODE_");
}

/** Why esan cannot serve `capability`, as a sentence; null when it can. */
export function capabilityProblem(capability: VolumeCapability | null | undefined): string | null {
  if (!capability) return "A volume capability is empty: set its access type (block or mount) and its access mode.";
  const mode = capability.accessMode?.mode ?? "UNKNOWN";
  if (!capability.accessMode || mode === "UNKNOWN") return "A volume capability has no access mode: set access_mode.mode.";
  if (!SUPPORTED_ACCESS_MODES.includes(mode)) {
    return `The access mode ${mode} is not supported: esan volumes are ${SUPPORTED_ACCESS_MODES.join(", ")}.`;
  }
  const block = capability.block !== null && capability.block !== undefined;
  const mount = capability.mount !== null && capability.mount !== undefined;
  if (!block && !mount) return "A volume capability has no access type: set block or mount.";
  if (mount) {
    const fsType = capability.mount?.fsType ?? "";
    if (fsType !== "" && !SUPPORTED_FS_TYPES.includes(fsType)) {
      return `The filesystem type '${fsType}' is not supported: use ${SUPPORTED_FS_TYPES.join(" or ")}, or leave it empty for ext4.`;
    }
    if ((capability.mount?.volumeMountGroup ?? "") !== "") {
      return "volume_mount_group is not supported: esan does not advertise the VOLUME_MOUNT_GROUP node capability.";
    }
  }
  return null;
}

/** Throws INVALID_ARGUMENT unless `capabilities` is a non-empty list esan supports entirely. */
export function checkCapabilities(field: string, capabilities: readonly VolumeCapability[] | null | undefined): void {
  if (!capabilities || capabilities.length === 0) throw invalidArgument(`The request field ${field} is required: give at least one volume capability.`);
  for (const capability of capabilities) {
    const problem = capabilityProblem(capability);
    if (problem !== null) throw invalidArgument(problem);
  }
}

/** Throws INVALID_ARGUMENT unless a single required capability is present and supported. */
export function checkCapability(field: string, capability: VolumeCapability | null | undefined): VolumeCapability {
  if (!capability) throw invalidArgument(`The request field ${field} is required.`);
  const problem = capabilityProblem(capability);
  if (problem !== null) throw invalidArgument(problem);
  return capability;
}
