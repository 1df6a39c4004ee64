// CSI response messages built from engine objects, and small lookups the controller services share.
import { status } from "@grpc/grpc-js";
import type { SanClient } from "../san/san-client.ts";
import { NotFoundError } from "../storage/errors.ts";
import type { CreationSource, DiskSnapshotInfo, SnapshotInfo, VolumeInfo } from "../storage/types.ts";
import { CsiError } from "./errors.ts";
import { diskSnapshotId } from "./ids.ts";
import { VOLUME_CONTEXT_KEYS } from "./volume-context.ts";

/** A google.protobuf.Timestamp for an ISO time. */
export function timestamp(iso: string): { seconds: number; nanos: number } {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** csi.v1.VolumeContentSource of a volume's creation source; null for an empty volume. */
export function contentSource(creation: CreationSource): Record<string, unknown> | null {
  switch (creation.kind) {
    case "snapshot":
      return { snapshot: { snapshotId: creation.sourceId } };
    case "diskSnapshot":
      return { snapshot: { snapshotId: diskSnapshotId(creation.sourceId) } };
    case "volume":
      return { volume: { volumeId: creation.sourceId } };
    default:
      return null;
  }
}

/** csi.v1.Volume of an engine volume; `fsType` (from the StorageClass) is only known when the volume is created. */
export function volumeMessage(volume: VolumeInfo, fsType?: string): Record<string, unknown> {
  const volumeContext: Record<string, string> = { [VOLUME_CONTEXT_KEYS.sectorSize]: String(volume.sectorSize) };
  if (fsType !== undefined) volumeContext[VOLUME_CONTEXT_KEYS.fsType] = fsType;
  return { capacityBytes: volume.sizeBytes, volumeId: volume.id, volumeContext, contentSource: contentSource(volume.creationData), accessibleTopology: [] };
}

/** csi.v1.VolumeCondition: abnormal never (esan volumes have no degraded state); the message says what is going on. */
export function volumeCondition(volume: VolumeInfo): { abnormal: boolean; message: string } {
  if (volume.hydration?.state === "hydrating") {
    return {
      abnormal: false,
      message: `Usable; hydrating from disk snapshot ${volume.hydration.diskSnapshot} (${volume.hydration.completionPercent}% copied).`,
    };
  }
  return { abnormal: false, message: "Healthy." };
}

/** csi.v1.Snapshot of an instant snapshot: ready at once. */
export function instantSnapshotMessage(snapshot: SnapshotInfo): Record<string, unknown> {
  return {
    sizeBytes: snapshot.sizeBytes,
    snapshotId: snapshot.id,
    sourceVolumeId: snapshot.sourceId,
    creationTime: timestamp(snapshot.createdAt),
    readyToUse: true,
    groupSnapshotId: snapshot.groupSnapshotId ?? "",
  };
}

/** csi.v1.Snapshot of a disk snapshot: ready once its export reached 100%. */
export function diskSnapshotMessage(disk: DiskSnapshotInfo): Record<string, unknown> {
  return {
    sizeBytes: disk.sizeBytes,
    snapshotId: diskSnapshotId(disk.name),
    sourceVolumeId: disk.sourceResourceId,
    creationTime: timestamp(disk.createdAt),
    readyToUse: disk.completionPercent >= 100,
    groupSnapshotId: "",
  };
}

/** `lookup()`'s result, or null when the engine says it does not exist. */
export async function orNull<T>(lookup: Promise<T>): Promise<T | null> {
  try {
    return await lookup;
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
}

/** Resolves when `action` succeeded or found nothing to act on (deletes and detaches are idempotent). */
export async function ignoreNotFound(action: Promise<unknown>): Promise<void> {
  await orNull(action);
}

/** NOT_FOUND for an id esan could never have issued, with the sentence the engine would use. */
export function notFound(kind: string, id: string): CsiError {
  return new CsiError(status.NOT_FOUND, `No ${kind} ${id} exists.`);
}

/** Every entry of a paged engine listing. */
export async function allPages<T>(list: (startingToken: string | undefined) => Promise<{ entries: T[]; nextToken: string }>): Promise<T[]> {
  const all: T[] = [];
  let token: string | undefined;
  do {
    const page = await list(token);
    all.push(...page.entries);
    token = page.nextToken === "" ? undefined : page.nextToken;
  } while (token !== undefined);
  return all;
}

/** Node ids each volume is attached to, by volume id. */
export async function publishedNodes(san: SanClient, volumeId?: string): Promise<Map<string, string[]>> {
  const nodes = new Map<string, string[]>();
  for (const attachment of await san.listAttachments(volumeId === undefined ? {} : { volumeId })) {
    nodes.set(attachment.volumeId, [...(nodes.get(attachment.volumeId) ?? []), attachment.nodeId]);
  }
  return nodes;
}
