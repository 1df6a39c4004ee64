// Where the node side (src/csi/node/) plugs into the server: its handlers, called through the same wrapper as every
// other RPC, with a per-volume lock so kubelet's calls on one volume never overlap.
import type { Logger } from "pino";
import type { FilesystemFreezer } from "./group-controller-service.ts";
import type { NodeService } from "./node/service.ts";
import type {
  NodeExpandVolumeRequest,
  NodeGetCapabilitiesRequest,
  NodeGetInfoRequest,
  NodeGetVolumeStatsRequest,
  NodePublishVolumeRequest,
  NodeServiceHandlers,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
} from "./node/types.ts";
import { unary, type CsiMethods } from "./rpc.ts";

/** Options of the node service (src/csi/node/service.ts, createNodeService). */
export interface NodeServiceOptions {
  nodeId: string;
  /** Where the node keeps its staging records (survives restarts). */
  stateDir: string;
  /** NodeGetInfo's max_volumes_per_node (default: the node side's). */
  maxVolumes?: number;
  logger: Logger;
}

/** The node service: created (re-attaching every recorded staging) before the server binds its socket. */
export async function loadNodeService(options: NodeServiceOptions): Promise<NodeService> {
  const { createNodeService } = await import("./node/service.ts");
  return createNodeService(options);
}

/**
 * The fsfreeze seam filled in where the node runs in the same process (`--mode all`): freezes each member's staged
 * filesystem, thawing what it froze when one fails. A controller-only process has no such freezer (NO_FREEZER).
 */
export function localFreezer(node: Pick<NodeService, "freezeVolume" | "thawVolume">): FilesystemFreezer {
  return {
    freeze: async (volumeIds) => {
      const frozen: string[] = [];
      const thawAll = async (): Promise<void> => {
        const failures: unknown[] = [];
        for (const id of frozen) await node.thawVolume(id).catch((err: unknown) => failures.push(err));
        if (failures.length > 0) throw failures[0];
      };
      try {
        for (const id of volumeIds) {
          await node.freezeVolume(id);
          frozen.push(id);
        }
      } catch (err) {
        await thawAll().catch(() => undefined);
        throw err;
      }
      return thawAll;
    },
  };
}

/** The Node service's methods over the node side's handlers; calls that change one volume lock it. */
export function nodeMethods(handlers: NodeServiceHandlers): CsiMethods {
  const perVolume = (request: { volumeId?: string }): string[] => (request.volumeId ? [`node-volume:${request.volumeId}`] : []);
  return {
    NodeStageVolume: unary<NodeStageVolumeRequest>({ mutating: true, lockKeys: perVolume, handle: (r) => handlers.nodeStageVolume(r) }),
    NodeUnstageVolume: unary<NodeUnstageVolumeRequest>({ mutating: true, lockKeys: perVolume, handle: (r) => handlers.nodeUnstageVolume(r) }),
    NodePublishVolume: unary<NodePublishVolumeRequest>({ mutating: true, lockKeys: perVolume, handle: (r) => handlers.nodePublishVolume(r) }),
    NodeUnpublishVolume: unary<NodeUnpublishVolumeRequest>({ mutating: true, lockKeys: perVolume, handle: (r) => handlers.nodeUnpublishVolume(r) }),
    NodeExpandVolume: unary<NodeExpandVolumeRequest>({ mutating: true, lockKeys: perVolume, handle: (r) => handlers.nodeExpandVolume(r) }),
    NodeGetVolumeStats: unary<NodeGetVolumeStatsRequest>({ handle: (r) => handlers.nodeGetVolumeStats(r) }),
    NodeGetCapabilities: unary<NodeGetCapabilitiesRequest>({ handle: (r) => handlers.nodeGetCapabilities(r) }),
    NodeGetInfo: unary<NodeGetInfoRequest>({ handle: (r) => handlers.nodeGetInfo(r) }),
  };
}
