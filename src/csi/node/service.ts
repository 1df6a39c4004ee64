// The CSI Node service: one handler per RPC over decoded request objects. createNodeService re-attaches every
// recorded staging before it returns, so the transport starts serving only once mounted filesystems work again.
import type { Logger } from "pino";
import { status } from "@grpc/grpc-js";
import { CsiError } from "../errors.ts";
import { type NbdMode, type NodeContext } from "./attachment.ts";
import { ToolError } from "./commands.ts";
import { freezeFilesystem, thawFilesystem } from "./fsfreeze.ts";
import { kernelNbdAvailable } from "./kernel-nbd.ts";
import { publishVolume, unpublishVolume } from "./publish.ts";
import { recoverStagings, stageVolume, unstageVolume, type StageOutcome } from "./stage.ts";
import { StagingStore } from "./staging-store.ts";
import { expandVolume, volumeStats } from "./stats.ts";
import type { NodeCapabilityName, NodeServiceHandlers } from "./types.ts";

export type { NodeServiceHandlers } from "./types.ts";
import { requireId, validateExpand, validatePublish, validateStage, validateStats, validateUnpublish, validateUnstage } from "./validate.ts";

/** Options of createNodeService. */
export interface NodeServiceOptions {
  /** This node's id, as NodeGetInfo reports it and ControllerPublishVolume receives it. */
  nodeId: string;
  /** Where stagings are recorded (0700; holds the per-attachment key files). Must survive plugin restarts: a host path. */
  stateDir: string;
  /** NodeGetInfo's max_volumes_per_node (default 0: no limit reported, the CO decides). */
  maxVolumes?: number;
  logger: Logger;
  /** Data path: "auto" (default) takes the kernel NBD device when /dev/nbd0 and qemu-nbd exist, else nbdfuse. */
  nbdMode?: NbdMode | "auto";
}

/** The Node service's handlers, plus what the group controller's fsfreeze and the process's shutdown need. */
export interface NodeService extends NodeServiceHandlers {
  /** How each recorded staging fared in the re-attach before serving. */
  readonly recovered: ReadonlyMap<string, StageOutcome | Error>;
  /** Freezes the filesystem of a staged volume (`fsfreeze -f` on its staging mount). */
  freezeVolume(volumeId: string): Promise<void>;
  /** Thaws it again; safe to call when it is not frozen. */
  thawVolume(volumeId: string): Promise<void>;
  /**
   * Stops taking calls. Attachments stay up on purpose: nbdfuse outlives the plugin so that mounted filesystems keep
   * working across restarts and upgrades; unstage is what takes them down.
   */
  close(): Promise<void>;
}

const CAPABILITIES: NodeCapabilityName[] = ["STAGE_UNSTAGE_VOLUME", "GET_VOLUME_STATS", "EXPAND_VOLUME", "VOLUME_CONDITION", "SINGLE_NODE_MULTI_WRITER"];

/**
 * A failure of a host tool or the NBD connection becomes a CsiError with a sentence: UNAVAILABLE when the NBD link could
 * not be made (retryable), INTERNAL otherwise. A CsiError passes through unchanged.
 */
function asCsiError(error: unknown, what: string): CsiError {
  if (error instanceof CsiError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && /^nbdfuse |qemu-nbd/.test(detail)) {
    return new CsiError(status.UNAVAILABLE, `${what}: the NBD connection failed (${detail}). Check that the SAN is reachable and the volume is published to this node.`, { cause: error });
  }
  const how = error instanceof ToolError ? "a host tool failed: " : "";
  return new CsiError(status.INTERNAL, `${what}: ${how}${detail}`, { cause: error });
}

/** Builds the Node service and re-attaches the recorded stagings before resolving. */
export async function createNodeService(options: NodeServiceOptions): Promise<NodeService> {
  if (options.nodeId === "") throw new Error("The node service needs a node id (--node-id).");
  const store = new StagingStore(options.stateDir);
  store.init();
  const mode = options.nbdMode ?? "auto";
  const nbdMode: NbdMode = mode === "auto" ? ((await kernelNbdAvailable()) ? "kernel" : "nbdfuse") : mode;
  const logger = options.logger.child({ component: "csi-node" });
  const context: NodeContext = { store, logger, nbdMode };
  logger.info({ nbdMode, stateDir: store.stateDir }, "node service starting; re-attaching recorded stagings");
  const recovered = await recoverStagings(context);
  let closed = false;

  const guard = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closed) throw new CsiError(status.UNAVAILABLE, `${what}: the node plugin is shutting down. Retry against the restarted plugin.`);
    try {
      return await run();
    } catch (error) {
      throw asCsiError(error, what);
    }
  };

  const stagedMount = (rpc: string, volumeId: string): string => {
    const record = store.get(volumeId);
    if (!record) throw new CsiError(status.NOT_FOUND, `${rpc}: volume ${volumeId} is not staged on this node.`);
    if (record.access.kind !== "mount") throw new CsiError(status.FAILED_PRECONDITION, `${rpc}: volume ${volumeId} is a block volume; only a filesystem can be frozen.`);
    return record.stagingTargetPath;
  };

  return {
    recovered,
    nodeStageVolume: async (request) => {
      const spec = validateStage(request);
      return await guard(`Cannot stage volume ${spec.volumeId}`, async () => {
        await stageVolume(context, spec);
        return {};
      });
    },
    nodeUnstageVolume: async (request) => {
      const spec = validateUnstage(request);
      return await guard(`Cannot unstage volume ${spec.volumeId}`, async () => {
        await unstageVolume(context, spec.volumeId, spec.stagingTargetPath);
        return {};
      });
    },
    nodePublishVolume: async (request) => {
      const spec = validatePublish(request);
      return await guard(`Cannot publish volume ${spec.volumeId} at ${spec.targetPath}`, async () => {
        await publishVolume(context, spec);
        return {};
      });
    },
    nodeUnpublishVolume: async (request) => {
      const spec = validateUnpublish(request);
      return await guard(`Cannot unpublish volume ${spec.volumeId} from ${spec.targetPath}`, async () => {
        await unpublishVolume(context, spec.volumeId, spec.targetPath);
        return {};
      });
    },
    nodeGetVolumeStats: async (request) => {
      const spec = validateStats(request);
      return await guard(`Cannot get the stats of volume ${spec.volumeId}`, () => volumeStats(context, spec.volumeId, spec.volumePath));
    },
    nodeExpandVolume: async (request) => {
      const spec = validateExpand(request);
      return await guard(`Cannot expand volume ${spec.volumeId} on the node`, async () => ({ capacityBytes: await expandVolume(context, spec) }));
    },
    nodeGetCapabilities: () => Promise.resolve({ capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) }),
    nodeGetInfo: () => Promise.resolve({ nodeId: options.nodeId, maxVolumesPerNode: options.maxVolumes ?? 0, accessibleTopology: null }),
    freezeVolume: async (volumeId) => {
      requireId(volumeId, "freezeVolume", "volume_id");
      return await guard(`Cannot freeze volume ${volumeId}`, () => freezeFilesystem(stagedMount("freezeVolume", volumeId)));
    },
    thawVolume: async (volumeId) => {
      requireId(volumeId, "thawVolume", "volume_id");
      return await guard(`Cannot thaw volume ${volumeId}`, () => thawFilesystem(stagedMount("thawVolume", volumeId)));
    },
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}
