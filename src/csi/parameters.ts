// The class parameters esan reads (StorageClass, VolumeSnapshotClass, VolumeGroupSnapshotClass), checked as pure
// functions. Keys Kubernetes' sidecars add themselves (`csi.storage.k8s.io/…`) are ignored; any other unknown key is
// refused, so a typo never silently falls back to a default.
import { status } from "@grpc/grpc-js";
import { validateName } from "../storage/names.ts";
import type { SectorSize } from "../storage/types.ts";
import { CsiError, invalidArgument } from "./errors.ts";
import { SUPPORTED_FS_TYPES } from "./capabilities.ts";

/** Prefix of the parameters the Kubernetes sidecars pass through on their own. */
const SIDECAR_PREFIX = "csi.storage.k8s.io/";

/** StorageClass parameters, read. */
export interface VolumeParameters {
  volumeGroup: string;
  /** Unset: the engine's default (512), or the source's for a clone. */
  sectorSize?: SectorSize;
  /** Unset: whatever the volume capability says, else ext4 on the node. */
  fsType?: string;
}

/** VolumeSnapshotClass parameters, read. */
export interface SnapshotParameters {
  /** `instant` (default): a snapshot inside the SAN; `durable`: a disk snapshot exported to the durable store. */
  tier: "instant" | "durable";
}

/** VolumeGroupSnapshotClass parameters, read. */
export interface GroupSnapshotParameters {
  /** Freeze the members' mounted filesystems around the commit (default false). */
  fsfreeze: boolean;
}

function checkKeys(kind: string, parameters: Record<string, string>, known: readonly string[]): void {
  for (const key of Object.keys(parameters)) {
    if (key.startsWith(SIDECAR_PREFIX) || known.includes(key)) continue;
    throw invalidArgument(`The ${kind} parameter '${key}' is not known to esan; the parameters are: ${known.join(", ")}.`);
  }
}

/** Reads StorageClass parameters; `defaultVolumeGroup` applies when `volumeGroup` is not given. */
export function volumeParameters(parameters: Record<string, string> | undefined, defaultVolumeGroup: string): VolumeParameters {
  const given = parameters ?? {};
  checkKeys("StorageClass", given, ["volumeGroup", "sectorSize", "fsType"]);
  const volumeGroup = given.volumeGroup ?? defaultVolumeGroup;
  try {
    validateName("volume group", volumeGroup);
  } catch (err) {
    throw new CsiError(status.INVALID_ARGUMENT, `The StorageClass parameter volumeGroup is not usable: ${(err as Error).message}`, { cause: err });
  }
  const result: VolumeParameters = { volumeGroup };
  if (given.sectorSize !== undefined) {
    if (given.sectorSize !== "512" && given.sectorSize !== "4096") {
      throw invalidArgument(`The StorageClass parameter sectorSize must be 512 or 4096; got '${given.sectorSize}'.`);
    }
    result.sectorSize = Number(given.sectorSize) as SectorSize;
  }
  if (given.fsType !== undefined && given.fsType !== "") {
    if (!SUPPORTED_FS_TYPES.includes(given.fsType)) {
      throw invalidArgument(`The StorageClass parameter fsType must be ${SUPPORTED_FS_TYPES.join(" or ")}; got '${given.fsType}'.`);
    }
    result.fsType = given.fsType;
  }
  return result;
}

/** Reads VolumeSnapshotClass parameters. */
export function snapshotParameters(parameters: Record<string, string> | undefined): SnapshotParameters {
  const given = parameters ?? {};
  checkKeys("VolumeSnapshotClass", given, ["tier"]);
  const tier = given.tier ?? "instant";
  if (tier !== "instant" && tier !== "durable") {
    throw invalidArgument(`The VolumeSnapshotClass parameter tier must be 'instant' or 'durable'; got '${tier}'.`);
  }
  return { tier };
}

/** Reads VolumeGroupSnapshotClass parameters. */
export function groupSnapshotParameters(parameters: Record<string, string> | undefined): GroupSnapshotParameters {
  const given = parameters ?? {};
  checkKeys("VolumeGroupSnapshotClass", given, ["fsfreeze"]);
  const fsfreeze = given.fsfreeze ?? "false";
  if (fsfreeze !== "true" && fsfreeze !== "false") {
    throw invalidArgument(`The VolumeGroupSnapshotClass parameter fsfreeze must be 'true' or 'false'; got '${fsfreeze}'.`);
  }
  return { fsfreeze: fsfreeze === "true" };
}
