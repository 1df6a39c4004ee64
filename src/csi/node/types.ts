// The CSI Node request and response shapes as @grpc/proto-loader decodes csi.v1 (keepCase false, longs Number, enums
// String, defaults true, oneofs true): camelCase fields, enums as their names, unset messages as null or undefined.

/** VolumeCapability.AccessMode.Mode, by name. */
export type AccessModeName =
  | "UNKNOWN"
  | "SINGLE_NODE_WRITER"
  | "SINGLE_NODE_READER_ONLY"
  | "MULTI_NODE_READER_ONLY"
  | "MULTI_NODE_SINGLE_WRITER"
  | "MULTI_NODE_MULTI_WRITER"
  | "SINGLE_NODE_SINGLE_WRITER"
  | "SINGLE_NODE_MULTI_WRITER";

/** csi.v1.VolumeCapability; `accessType` names which member of the oneof is set. */
export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fsType?: string; mountFlags?: string[]; volumeMountGroup?: string } | null;
  /** The mode's name; typed as string because a newer CO may send a mode this build does not know. */
  accessMode?: { mode?: string } | null;
  /** "block" or "mount" when set. */
  accessType?: string;
}

export interface NodeStageVolumeRequest {
  volumeId?: string;
  publishContext?: Record<string, string>;
  stagingTargetPath?: string;
  volumeCapability?: VolumeCapability | null;
  secrets?: Record<string, string>;
  volumeContext?: Record<string, string>;
}
export type NodeStageVolumeResponse = Record<string, never>;

export interface NodeUnstageVolumeRequest {
  volumeId?: string;
  stagingTargetPath?: string;
}
export type NodeUnstageVolumeResponse = Record<string, never>;

export interface NodePublishVolumeRequest {
  volumeId?: string;
  publishContext?: Record<string, string>;
  stagingTargetPath?: string;
  targetPath?: string;
  volumeCapability?: VolumeCapability | null;
  readonly?: boolean;
  secrets?: Record<string, string>;
  volumeContext?: Record<string, string>;
}
export type NodePublishVolumeResponse = Record<string, never>;

export interface NodeUnpublishVolumeRequest {
  volumeId?: string;
  targetPath?: string;
}
export type NodeUnpublishVolumeResponse = Record<string, never>;

export interface NodeGetVolumeStatsRequest {
  volumeId?: string;
  volumePath?: string;
  stagingTargetPath?: string;
}

/** csi.v1.VolumeUsage. */
export interface VolumeUsage {
  available: number;
  total: number;
  used: number;
  unit: "BYTES" | "INODES";
}

/** csi.v1.VolumeCondition. */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

export interface NodeGetVolumeStatsResponse {
  usage: VolumeUsage[];
  volumeCondition: VolumeCondition;
}

export interface NodeExpandVolumeRequest {
  volumeId?: string;
  volumePath?: string;
  capacityRange?: { requiredBytes?: number; limitBytes?: number } | null;
  stagingTargetPath?: string;
  volumeCapability?: VolumeCapability | null;
  secrets?: Record<string, string>;
}
export interface NodeExpandVolumeResponse {
  capacityBytes: number;
}

export type NodeGetCapabilitiesRequest = Record<string, never>;

/** NodeServiceCapability.RPC.Type, by name. */
export type NodeCapabilityName = "STAGE_UNSTAGE_VOLUME" | "GET_VOLUME_STATS" | "EXPAND_VOLUME" | "VOLUME_CONDITION" | "SINGLE_NODE_MULTI_WRITER";

export interface NodeGetCapabilitiesResponse {
  capabilities: { rpc: { type: NodeCapabilityName } }[];
}

export type NodeGetInfoRequest = Record<string, never>;
export interface NodeGetInfoResponse {
  nodeId: string;
  maxVolumesPerNode: number;
  accessibleTopology: null;
}

/** The Node service: one async handler per RPC over decoded plain objects; refusals are thrown as CsiError. */
export interface NodeServiceHandlers {
  nodeStageVolume(request: NodeStageVolumeRequest): Promise<NodeStageVolumeResponse>;
  nodeUnstageVolume(request: NodeUnstageVolumeRequest): Promise<NodeUnstageVolumeResponse>;
  nodePublishVolume(request: NodePublishVolumeRequest): Promise<NodePublishVolumeResponse>;
  nodeUnpublishVolume(request: NodeUnpublishVolumeRequest): Promise<NodeUnpublishVolumeResponse>;
  nodeGetVolumeStats(request: NodeGetVolumeStatsRequest): Promise<NodeGetVolumeStatsResponse>;
  nodeExpandVolume(request: NodeExpandVolumeRequest): Promise<NodeExpandVolumeResponse>;
  nodeGetCapabilities(request: NodeGetCapabilitiesRequest): Promise<NodeGetCapabilitiesResponse>;
  nodeGetInfo(request: NodeGetInfoRequest): Promise<NodeGetInfoResponse>;
}
