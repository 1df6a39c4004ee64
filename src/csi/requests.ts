// The CSI requests the controller side handles, as @grpc/proto-loader decodes them (CSI_LOADER_OPTIONS): camelCase
// fields, unset strings "", numbers 0, maps {}, lists [], messages null. Types only; the checks are in the handlers.
import type { VolumeCapability } from "./capabilities.ts";
import type { CapacityRange } from "./capacity.ts";

/** A string to string map (parameters, secrets, contexts). */
export type StringMap = Record<string, string>;

export interface CreateVolumeRequest {
  name: string;
  capacityRange: CapacityRange | null;
  volumeCapabilities: VolumeCapability[];
  parameters: StringMap;
  secrets: StringMap;
  volumeContentSource: {
    type?: "snapshot" | "volume";
    snapshot?: { snapshotId: string } | null;
    volume?: { volumeId: string } | null;
  } | null;
  mutableParameters: StringMap;
}

export interface VolumeIdRequest {
  volumeId: string;
  secrets?: StringMap;
}

export interface ControllerPublishVolumeRequest {
  volumeId: string;
  nodeId: string;
  volumeCapability: VolumeCapability | null;
  readonly: boolean;
  secrets: StringMap;
  volumeContext: StringMap;
}

export interface ControllerUnpublishVolumeRequest {
  volumeId: string;
  nodeId: string;
  secrets: StringMap;
}

export interface ValidateVolumeCapabilitiesRequest {
  volumeId: string;
  volumeContext: StringMap;
  volumeCapabilities: VolumeCapability[];
  parameters: StringMap;
  secrets: StringMap;
}

export interface ListRequest {
  maxEntries: number;
  startingToken: string;
}

export interface GetCapacityRequest {
  volumeCapabilities: VolumeCapability[];
  parameters: StringMap;
}

export interface ControllerExpandVolumeRequest {
  volumeId: string;
  capacityRange: CapacityRange | null;
  secrets: StringMap;
  volumeCapability: VolumeCapability | null;
}

export interface CreateSnapshotRequest {
  sourceVolumeId: string;
  name: string;
  secrets: StringMap;
  parameters: StringMap;
}

export interface SnapshotIdRequest {
  snapshotId: string;
  secrets: StringMap;
}

export interface ListSnapshotsRequest extends ListRequest {
  sourceVolumeId: string;
  snapshotId: string;
  secrets: StringMap;
}

export interface CreateVolumeGroupSnapshotRequest {
  name: string;
  sourceVolumeIds: string[];
  secrets: StringMap;
  parameters: StringMap;
}

export interface GroupSnapshotIdRequest {
  groupSnapshotId: string;
  snapshotIds: string[];
  secrets: StringMap;
}

export interface GetMetadataAllocatedRequest {
  snapshotId: string;
  startingOffset: number;
  maxResults: number;
  secrets: StringMap;
}

export interface GetMetadataDeltaRequest {
  baseSnapshotId: string;
  targetSnapshotId: string;
  startingOffset: number;
  maxResults: number;
  secrets: StringMap;
}
