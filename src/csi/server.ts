// The CSI gRPC server (`esan csi`): registers Identity everywhere, Controller, GroupController and SnapshotMetadata in
// controller mode, Node in node mode (both in `all`), every RPC through one RpcWrapper, on one unix socket (or TCP).
// Shutdown stops accepting, lets calls in flight finish (up to a grace period), and removes the socket.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { formatEndpoint, grpcTarget, type Endpoint } from "../san/endpoints.ts";
import type { SanClient } from "../san/san-client.ts";
import { clearStaleSocket, removeSocket, restrictSocket } from "../san/sockets.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import { controllerVolumeMethods } from "./controller-service.ts";
import { groupControllerService, type FilesystemFreezer } from "./group-controller-service.ts";
import { identityService } from "./identity-service.ts";
import type { CsiMetrics } from "./metrics.ts";
import { nodeMethods } from "./node-binding.ts";
import type { NodeServiceHandlers } from "./node/types.ts";
import { csiServiceDefinition } from "./proto.ts";
import { RpcWrapper } from "./rpc.ts";
import { snapshotMetadataService } from "./snapshot-metadata-service.ts";
import { controllerSnapshotMethods } from "./snapshot-service.ts";

/** Which CSI services a process serves. */
export type CsiMode = "controller" | "node" | "all";

/** Everything `esan csi` was asked for, parsed and opened. */
export interface CsiServerConfig {
  mode: CsiMode;
  endpoint: Endpoint;
  /** The SAN the controller works on; required in controller and all modes. */
  san?: SanClient;
  /** The node side's handlers; without them (node and all modes) node RPCs answer UNIMPLEMENTED. */
  node?: NodeServiceHandlers | null;
  /** Node ids the controller accepts in ControllerPublishVolume (default: any). */
  knownNodes?: ReadonlySet<string>;
  /** Volume group of volumes whose StorageClass names none (default "csi"). */
  defaultVolumeGroup?: string;
  /** How fsfreeze reaches node filesystems (default: refused). */
  freezer?: FilesystemFreezer;
  metrics?: CsiMetrics;
  version: string;
  logger: Logger;
}

/** A running CSI server. */
export class CsiServer {
  /** Where it listens, as a URL (a TCP port 0 resolved). */
  readonly endpoint: string;
  readonly #server: Server;
  readonly #bound: Endpoint;
  readonly #wrapper: RpcWrapper;

  private constructor(server: Server, bound: Endpoint, wrapper: RpcWrapper) {
    this.#server = server;
    this.#bound = bound;
    this.#wrapper = wrapper;
    this.endpoint = formatEndpoint(bound);
  }

  /** Calls being handled right now. */
  get inFlight(): number {
    return this.#wrapper.inFlight;
  }

  /** Registers the services of `config.mode` and binds the endpoint. */
  static async start(config: CsiServerConfig): Promise<CsiServer> {
    const controller = config.mode !== "node";
    const node = config.mode !== "controller";
    const san = config.san;
    if (controller && !san) throw new InvalidArgumentError(`esan csi --mode ${config.mode} needs the SAN to work on: pass --san unix:///PATH or tcp://HOST:PORT.`);
    const wrapper = new RpcWrapper({ logger: config.logger, ...(config.metrics ? { metrics: config.metrics } : {}) });
    const server = new Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
    const add = (name: Parameters<typeof csiServiceDefinition>[0], methods: Parameters<RpcWrapper["implementation"]>[2]): void => {
      const definition = csiServiceDefinition(name);
      server.addService(definition, wrapper.implementation(name, definition, methods));
    };
    add(
      "Identity",
      identityService({
        version: config.version,
        // The controller is ready when the SAN answers; a node is ready once it serves (it re-attached before that).
        probe: async () => {
          if (controller && san) await san.info();
        },
      }),
    );
    if (controller && san) {
      const options = {
        san,
        logger: config.logger,
        ...(config.knownNodes ? { knownNodes: config.knownNodes } : {}),
        ...(config.defaultVolumeGroup ? { defaultVolumeGroup: config.defaultVolumeGroup } : {}),
      };
      add("Controller", { ...controllerVolumeMethods(options), ...controllerSnapshotMethods(san) });
      add("GroupController", groupControllerService({ san, logger: config.logger, ...(config.freezer ? { freezer: config.freezer } : {}) }));
      add("SnapshotMetadata", snapshotMetadataService(san));
    }
    if (node) add("Node", config.node ? nodeMethods(config.node) : {});
    if (config.endpoint.kind === "unix") await clearStaleSocket(config.endpoint.path, "--endpoint");
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(grpcTarget(config.endpoint), ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    const bound: Endpoint = config.endpoint.kind === "tcp" ? { ...config.endpoint, port } : config.endpoint;
    // Publish hands out NBD keys: only the owner (the sidecars and kubelet run as root) may talk to this socket.
    if (bound.kind === "unix") restrictSocket(bound.path);
    return new CsiServer(server, bound, wrapper);
  }

  /** Stops accepting calls, waits for those in flight up to `graceMs`, then cancels the rest; removes the socket. */
  async stop(graceMs: number): Promise<void> {
    const drained = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    const timer = setTimeout(() => this.#server.forceShutdown(), graceMs);
    try {
      await drained;
    } finally {
      clearTimeout(timer);
      if (this.#bound.kind === "unix") removeSocket(this.#bound.path);
    }
  }
}
