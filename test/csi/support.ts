// Helpers of the CSI controller tests: a real `esan san serve` and a real `esan csi` on temp unix sockets, stopped by
// pid however a test ends, and promise-based gRPC clients of the CSI services built from proto/csi/v1/csi.proto.
import path from "node:path";
import { credentials, type Client, type ServiceError } from "@grpc/grpc-js";
import { expect } from "vitest";
import { csiServiceClient, type CsiServiceName } from "../../src/csi/proto.ts";
import { type EsanProcess, freshSan, killServers, serve, type Served, startEsan } from "../san/support.ts";

export { killServers };

/** What `esan csi --json` prints once it serves. */
export interface CsiReady {
  mode: string;
  endpoint: string;
  pid: number;
  nodeId: string | null;
  metrics: string | null;
}

/** A running `esan csi`. */
export type CsiProcess = EsanProcess<CsiReady>;

/** Starts `bin/esan csi --json ARGS` and waits for its ready line. */
export function startCsi(args: readonly string[]): Promise<CsiProcess> {
  return startEsan(["csi", "--json", ...args], (stdout) => (stdout.includes("\n") ? (JSON.parse(stdout.split("\n")[0]!) as CsiReady) : null));
}

/** Kills every `esan csi` and `esan san serve` a test left running (SIGKILL to their process groups). */
export async function killAll(): Promise<void> {
  await killServers();
}

/** A gRPC failure as a test sees it. */
export interface CallFailure {
  code: number;
  details: string;
}

/** Promise-based calls on the CSI services of one endpoint. */
export class CsiClient {
  readonly #clients = new Map<CsiServiceName, Client>();
  readonly #target: string;

  constructor(endpoint: string) {
    this.#target = endpoint;
  }

  #client(service: CsiServiceName): Client {
    let client = this.#clients.get(service);
    if (!client) {
      const Service = csiServiceClient(service);
      client = new Service(this.#target, credentials.createInsecure());
      this.#clients.set(service, client);
    }
    return client;
  }

  /** One unary call; resolves with the decoded response, rejects with the ServiceError. */
  call<T = Record<string, unknown>>(service: CsiServiceName, method: string, request: Record<string, unknown> = {}): Promise<T> {
    const client = this.#client(service) as unknown as Record<string, (r: unknown, cb: (err: ServiceError | null, value: T) => void) => void>;
    return new Promise((resolve, reject) => {
      client[method]!.call(client, request, (err, value) => (err ? reject(err) : resolve(value)));
    });
  }

  /** A call expected to fail: its code and sentence. */
  async failure(service: CsiServiceName, method: string, request: Record<string, unknown> = {}): Promise<CallFailure> {
    try {
      await this.call(service, method, request);
    } catch (err) {
      const failure = err as ServiceError;
      return { code: failure.code, details: failure.details };
    }
    throw new Error(`${service}.${method} succeeded, but the test expected it to fail`);
  }

  /** One server-streaming call, collected. */
  stream<T = Record<string, unknown>>(service: CsiServiceName, method: string, request: Record<string, unknown>): Promise<T[]> {
    const client = this.#client(service) as unknown as Record<string, (r: unknown) => NodeJS.EventEmitter>;
    return new Promise((resolve, reject) => {
      const messages: T[] = [];
      const call = client[method]!.call(client, request);
      call.on("data", (message: T) => messages.push(message));
      call.on("error", reject);
      call.on("end", () => resolve(messages));
    });
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
  }
}

/** A SAN service and an `esan csi` in front of it. */
export interface CsiStack {
  root: string;
  san: Served;
  csi: CsiProcess;
  client: CsiClient;
  /** The unix socket path of the CSI endpoint. */
  socket: string;
  stop: () => Promise<void>;
}

/** Options of startStack. */
export interface StackOptions {
  /** `esan san create` arguments (default: a 1 TiB SAN, thin). */
  createArgs?: readonly string[];
  mode?: "controller" | "all";
  /** More `esan csi` arguments. */
  csiArgs?: readonly string[];
}

/** `esan san create` + `esan san serve` + `esan csi --mode controller` (or all), each on a temp unix socket. */
export async function startStack(options: StackOptions = {}): Promise<CsiStack> {
  const san = await freshSan(options.createArgs ?? ["--capacity", "1TiB"]);
  const served = await serve(san.dataDir);
  const socket = path.join(san.root, "csi.sock");
  const csi = await startCsi([
    "--mode",
    options.mode ?? "controller",
    "--endpoint",
    `unix://${socket}`,
    "--san",
    served.api,
    "--state-dir",
    path.join(san.root, "node-state"),
    ...(options.csiArgs ?? []),
  ]);
  const client = new CsiClient(`unix://${socket}`);
  return {
    root: san.root,
    san: served,
    csi,
    client,
    socket,
    stop: async () => {
      client.close();
      await csi.stop();
      await served.stop();
      san.cleanup();
    },
  };
}

/** A mount capability, single node writer, as most requests carry. */
export const MOUNT_RWO = { mount: { fsType: "ext4", mountFlags: [] }, accessMode: { mode: "SINGLE_NODE_WRITER" } };
/** A raw block capability, single node writer. */
export const BLOCK_RWO = { block: {}, accessMode: { mode: "SINGLE_NODE_WRITER" } };

/** Binary units. */
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Creates a volume through CSI and returns its id. */
export async function createVolume(client: CsiClient, name: string, sizeBytes = 64 * MiB, extra: Record<string, unknown> = {}): Promise<string> {
  const response = await client.call<{ volume: { volumeId: string } }>("Controller", "CreateVolume", {
    name,
    capacityRange: { requiredBytes: sizeBytes },
    volumeCapabilities: [MOUNT_RWO],
    ...extra,
  });
  expect(response.volume.volumeId).not.toBe("");
  return response.volume.volumeId;
}
