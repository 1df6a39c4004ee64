// The volume_context keys CreateVolume returns and NodeStageVolume receives (Kubernetes keeps them in the PV).

/** Keys of the CSI `volume_context` map esan sets. Values are strings. */
export const VOLUME_CONTEXT_KEYS = {
  /** The StorageClass's `fsType` parameter, when it had one: `ext4` or `xfs`. The capability's fs_type wins over it. */
  fsType: "esan.csi.dev/fs-type",
  /** Logical sector size of the volume: `512` or `4096`. */
  sectorSize: "esan.csi.dev/sector-size",
} as const;
