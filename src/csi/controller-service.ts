// CSI Controller, volume half: create (empty, clone, restore), delete, publish (a per-attachment NBD credential),
// validate, list, capacity, expand, get. Snapshots are in snapshot-service.ts; both form the Controller service.
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { SanClient } from "../san/san-client.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import type { CreateVolumeRequest as EngineCreateVolumeRequest, VolumeInfo } from "../storage/types.ts";
import { capabilityProblem, checkCapabilities, checkCapability, isSingleNode, type VolumeCapability } from "./capabilities.ts";
import { sizeForRange, sizeSatisfies, type CapacityRange } from "./capacity.ts";
import { CsiError, invalidArgument } from "./errors.ts";
import { checkCsiString, engineName, parseEngineId, parseSnapshotId } from "./ids.ts";
import { contentSource, ignoreNotFound, notFound, orNull, publishedNodes, volumeCondition, volumeMessage } from "./messages.ts";
import { volumeParameters } from "./parameters.ts";
import { encodePublishContext, nbdUriFor } from "./publish-context.ts";
import { answer, unary, type CsiMethods } from "./rpc.ts";
import type { ControllerExpandVolumeRequest, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateVolumeRequest, GetCapacityRequest, ListRequest, ValidateVolumeCapabilitiesRequest, VolumeIdRequest } from "./requests.ts";

/** Options of the controller services. */
export interface ControllerOptions {
  san: SanClient;
  /** Volume group of volumes whose StorageClass names none (default "csi"). */
  defaultVolumeGroup?: string;
  /**
   * Node ids that may have volumes published to them; a publish to any other is NOT_FOUND. Undefined (the default)
   * accepts any node id the CO names: in Kubernetes the attacher only names nodes that registered the driver.
   */
  knownNodes?: ReadonlySet<string>;
  logger: Logger;
}

/**
 * Controller capabilities esan advertises. GetSnapshot is served but GET_SNAPSHOT (alpha) is not advertised:
 * csi-sanity v5.4.0 fails a driver that lists a capability it does not know.
 */
export const CONTROLLER_CAPABILITIES = [
  "CREATE_DELETE_VOLUME",
  "PUBLISH_UNPUBLISH_VOLUME",
  "LIST_VOLUMES",
  "GET_CAPACITY",
  "CREATE_DELETE_SNAPSHOT",
  "LIST_SNAPSHOTS",
  "CLONE_VOLUME",
  "EXPAND_VOLUME",
  "LIST_VOLUMES_PUBLISHED_NODES",
  "VOLUME_CONDITION",
  "GET_VOLUME",
].map((type) => ({ rpc: { type } }));

/** The SAN's chunk size, asked once: it is fixed when the SAN is created. */
export function chunkSizeOf(san: SanClient): () => Promise<number> {
  let chunk: Promise<number> | null = null;
  return () => {
    chunk ??= san.info().then(
      (info) => info.chunkSizeBytes,
      (err: unknown) => {
        chunk = null;
        throw err;
      },
    );
    return chunk;
  };
}

/** The source of a CreateVolume, resolved to what the engine takes, with its size and sector size. */
interface ResolvedSource {
  source: NonNullable<EngineCreateVolumeRequest["source"]>;
  sizeBytes: number;
  sectorSize: number;
}

/** The Controller service's volume handlers. */
export function controllerVolumeMethods(options: ControllerOptions): CsiMethods {
  const san = options.san;
  const defaultVolumeGroup = options.defaultVolumeGroup ?? "csi";
  const chunkSize = chunkSizeOf(san);

  async function resolveSource(request: CreateVolumeRequest): Promise<ResolvedSource | null> {
    const source = request.volumeContentSource;
    if (!source || !source.type) return null;
    if (source.type === "snapshot") {
      const snapshotId = checkCsiString("volume_content_source.snapshot.snapshot_id", source.snapshot?.snapshotId);
      const ref = parseSnapshotId(snapshotId);
      if (!ref) throw notFound("snapshot", snapshotId);
      if (ref.tier === "durable") {
        const disk = await san.getDiskSnapshot(ref.name);
        return { source: { kind: "diskSnapshot", id: ref.name }, sizeBytes: disk.sizeBytes, sectorSize: disk.sectorSize };
      }
      const snapshot = await san.getSnapshot(ref.id);
      return { source: { kind: "snapshot", id: ref.id }, sizeBytes: snapshot.sizeBytes, sectorSize: snapshot.sectorSize };
    }
    const volumeId = checkCsiString("volume_content_source.volume.volume_id", source.volume?.volumeId);
    if (!parseEngineId(volumeId)) throw notFound("volume", volumeId);
    const volume = await san.getVolume(volumeId);
    return { source: { kind: "volume", id: volumeId }, sizeBytes: volume.sizeBytes, sectorSize: volume.sectorSize };
  }

  /** Why an existing volume does not answer this CreateVolume; null when it does (an idempotent retry). */
  function mismatch(existing: VolumeInfo, range: CapacityRange | null, source: ResolvedSource | null, sectorSize: number | undefined): string | null {
    if (!sizeSatisfies(existing.sizeBytes, range)) {
      return `its size is ${existing.sizeBytes} bytes, outside the requested [${range?.requiredBytes ?? 0}, ${range?.limitBytes || "unlimited"}]`;
    }
    if (sectorSize !== undefined && existing.sectorSize !== sectorSize) return `its sector size is ${existing.sectorSize}, not ${sectorSize}`;
    const had = contentSource(existing.creationData);
    const wanted = source === null ? null : contentSource({ kind: source.source.kind, sourceId: source.source.id, sourceUniqueId: "" });
    if (JSON.stringify(had) !== JSON.stringify(wanted)) return "it was created from another source";
    return null;
  }

  return {
    CreateVolume: unary<CreateVolumeRequest>({
      mutating: true,
      validate: (r) => {
        checkCsiString("name", r.name);
        checkCapabilities("volume_capabilities", r.volumeCapabilities);
        volumeParameters(r.parameters, defaultVolumeGroup);
      },
      lockKeys: (r) => [`volume-name:${r.name}`],
      handle: async (r) => {
        const parameters = volumeParameters(r.parameters, defaultVolumeGroup);
        const id = `${parameters.volumeGroup}/${engineName(r.name)}`;
        const range: CapacityRange | null = r.capacityRange;
        const source = await resolveSource(r);
        const existing = await orNull(san.getVolume(id));
        if (existing) {
          const problem = mismatch(existing, range, source, parameters.sectorSize);
          if (problem !== null) {
            throw new CsiError(status.ALREADY_EXISTS, `A volume named '${r.name}' (${id}) already exists, but ${problem}. Use another name or the same parameters.`);
          }
          return { volume: volumeMessage(existing, parameters.fsType) };
        }
        const sectorSize = parameters.sectorSize ?? source?.sectorSize ?? 512;
        const sizeBytes = sizeForRange(range, { chunkSizeBytes: await chunkSize(), sectorSize, minimumBytes: source?.sizeBytes ?? 0 });
        await san.createVolumeGroup(parameters.volumeGroup);
        const created = await san.createVolume({
          volumeGroup: parameters.volumeGroup,
          name: engineName(r.name),
          sizeBytes,
          ...(parameters.sectorSize !== undefined || !source ? { sectorSize: sectorSize as 512 | 4096 } : {}),
          ...(source ? { source: source.source } : {}),
        });
        return { volume: volumeMessage(created, parameters.fsType) };
      },
    }),

    DeleteVolume: unary<VolumeIdRequest>({
      mutating: true,
      validate: (r) => void checkCsiString("volume_id", r.volumeId),
      lockKeys: (r) => [`volume:${r.volumeId}`],
      handle: async (r) => {
        // An id esan never issued names no volume, and deleting what does not exist succeeds.
        if (parseEngineId(r.volumeId)) await ignoreNotFound(san.deleteVolume(r.volumeId));
        return {};
      },
    }),

    ControllerPublishVolume: unary<ControllerPublishVolumeRequest>({
      mutating: true,
      validate: (r) => {
        checkCsiString("volume_id", r.volumeId);
        checkCsiString("node_id", r.nodeId);
        checkCapability("volume_capability", r.volumeCapability);
      },
      lockKeys: (r) => [`volume:${r.volumeId}`],
      handle: async (r) => {
        if (!parseEngineId(r.volumeId)) throw notFound("volume", r.volumeId);
        await san.getVolume(r.volumeId);
        if (options.knownNodes && !options.knownNodes.has(r.nodeId)) {
          throw new CsiError(status.NOT_FOUND, `No node ${r.nodeId} is known to this controller; it knows ${[...options.knownNodes].join(", ")}.`);
        }
        const mode: string = (r.volumeCapability as VolumeCapability).accessMode?.mode ?? "";
        if (isSingleNode(mode)) {
          const elsewhere = (await san.listAttachments({ volumeId: r.volumeId })).find((a) => a.nodeId !== r.nodeId);
          if (elsewhere) {
            throw new CsiError(
              status.FAILED_PRECONDITION,
              `Cannot publish ${r.volumeId} to node ${r.nodeId}: it is published to node ${elsewhere.nodeId}, and ${mode} allows one node at a time. Unpublish it there first.`,
            );
          }
        }
        const credential = await san.attach(r.volumeId, r.nodeId);
        return {
          publishContext: encodePublishContext({
            nbdAddress: credential.nbdAddress,
            nbdUri: nbdUriFor(credential.nbdAddress, credential.exportName, credential.pskIdentity),
            exportName: credential.exportName,
            pskIdentity: credential.pskIdentity,
            pskKey: credential.pskKey,
          }),
        };
      },
    }),

    ControllerUnpublishVolume: unary<ControllerUnpublishVolumeRequest>({
      mutating: true,
      validate: (r) => void checkCsiString("volume_id", r.volumeId),
      lockKeys: (r) => [`volume:${r.volumeId}`],
      handle: async (r) => {
        if (!parseEngineId(r.volumeId)) return {};
        // No node id means every node; a volume or node that is gone is already unpublished.
        const nodes: string[] = r.nodeId ? [r.nodeId] : (await san.listAttachments({ volumeId: r.volumeId })).map((a) => a.nodeId);
        for (const nodeId of nodes) await ignoreNotFound(san.detach(r.volumeId, nodeId));
        return {};
      },
    }),

    ValidateVolumeCapabilities: unary<ValidateVolumeCapabilitiesRequest>({
      validate: (r) => {
        checkCsiString("volume_id", r.volumeId);
        if (!Array.isArray(r.volumeCapabilities) || r.volumeCapabilities.length === 0) {
          throw invalidArgument("The request field volume_capabilities is required: give at least one volume capability.");
        }
      },
      handle: async (r) => {
        if (!parseEngineId(r.volumeId)) throw notFound("volume", r.volumeId);
        await san.getVolume(r.volumeId);
        for (const capability of r.volumeCapabilities) {
          const problem = capabilityProblem(capability);
          if (problem !== null) return { confirmed: null, message: problem };
        }
        try {
          volumeParameters(r.parameters, defaultVolumeGroup);
        } catch (err) {
          return { confirmed: null, message: (err as Error).message };
        }
        return {
          confirmed: { volumeContext: r.volumeContext ?? {}, volumeCapabilities: r.volumeCapabilities, parameters: r.parameters ?? {}, mutableParameters: {} },
          message: "",
        };
      },
    }),

    ListVolumes: unary<ListRequest>({
      validate: (r) => {
        if (r.maxEntries < 0) throw invalidArgument(`max_entries must not be negative; got ${r.maxEntries}.`);
      },
      handle: async (r) => {
        let page;
        try {
          page = await san.listVolumes({ maxEntries: r.maxEntries, ...(r.startingToken ? { startingToken: r.startingToken } : {}) });
        } catch (err) {
          if (err instanceof InvalidArgumentError && r.startingToken) throw new CsiError(status.ABORTED, err.message, { cause: err });
          throw err;
        }
        const nodes = await publishedNodes(san);
        return {
          entries: page.entries.map((volume) => ({
            volume: volumeMessage(volume),
            status: { publishedNodeIds: nodes.get(volume.id) ?? [], volumeCondition: volumeCondition(volume) },
          })),
          nextToken: page.nextToken,
        };
      },
    }),

    ControllerGetVolume: unary<VolumeIdRequest>({
      validate: (r) => void checkCsiString("volume_id", r.volumeId),
      handle: async (r) => {
        if (!parseEngineId(r.volumeId)) throw notFound("volume", r.volumeId);
        const volume = await san.getVolume(r.volumeId);
        const nodes = await publishedNodes(san, r.volumeId);
        return { volume: volumeMessage(volume), status: { publishedNodeIds: nodes.get(volume.id) ?? [], volumeCondition: volumeCondition(volume) } };
      },
    }),

    GetCapacity: unary<GetCapacityRequest>({
      validate: (r) => void volumeParameters(r.parameters, defaultVolumeGroup),
      handle: async (r) => {
        const info = await san.info();
        const supported = ((r.volumeCapabilities ?? [])).every((capability) => capabilityProblem(capability) === null);
        // Volume sizes together may not exceed the capacity (thin provisioning is checked per write as well).
        const available = supported ? Math.max(0, info.capacityBytes - info.provisionedBytes) : 0;
        return { availableCapacity: available, maximumVolumeSize: { value: available }, minimumVolumeSize: { value: info.chunkSizeBytes } };
      },
    }),

    ControllerGetCapabilities: answer(() => ({ capabilities: CONTROLLER_CAPABILITIES })),

    ControllerExpandVolume: unary<ControllerExpandVolumeRequest>({
      mutating: true,
      validate: (r) => {
        checkCsiString("volume_id", r.volumeId);
        if (!r.capacityRange) throw invalidArgument("The request field capacity_range is required: say how large the volume should become.");
        if (r.volumeCapability) checkCapability("volume_capability", r.volumeCapability);
      },
      lockKeys: (r) => [`volume:${r.volumeId}`],
      handle: async (r) => {
        if (!parseEngineId(r.volumeId)) throw notFound("volume", r.volumeId);
        const volume = await san.getVolume(r.volumeId);
        const range: CapacityRange = r.capacityRange ?? {};
        // A raw block volume needs nothing on the node; a filesystem must be grown there.
        const nodeExpansionRequired = !(r.volumeCapability && (r.volumeCapability).block);
        if (volume.sizeBytes >= (range.requiredBytes ?? 0) && sizeSatisfies(volume.sizeBytes, range)) {
          return { capacityBytes: volume.sizeBytes, nodeExpansionRequired };
        }
        const sizeBytes = sizeForRange(range, { chunkSizeBytes: await chunkSize(), sectorSize: volume.sectorSize });
        if (sizeBytes < volume.sizeBytes) {
          throw new CsiError(
            status.OUT_OF_RANGE,
            `Cannot shrink ${r.volumeId} from ${volume.sizeBytes} bytes to at most ${range.limitBytes} bytes: esan volumes only grow.`,
          );
        }
        const resized = await san.resizeVolume(r.volumeId, sizeBytes);
        return { capacityBytes: resized.sizeBytes, nodeExpansionRequired };
      },
    }),
  };
}
