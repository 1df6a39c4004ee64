// The SAN service (`esan san serve`): opens a data directory, serves the SAN API and the NBD data endpoint, and on
// SIGTERM/SIGINT stops accepting, drains what is in flight, commits and closes the SAN.
import type { Logger } from "pino";
import { NbdConfigError } from "../nbd/config-error.ts";
import { NbdServer } from "../nbd/server.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import { checkTcpAuthentication, SanApiServer, type ApiTls } from "./api-server.ts";
import { formatEndpoint, type Endpoint } from "./endpoints.ts";
import { SanExports } from "./exports.ts";
import { LocalSanClient } from "./local-san-client.ts";
import { clearStaleSocket } from "./sockets.ts";

/** Everything `esan san serve` was asked for, already parsed. */
export interface SanServiceConfig {
  dataDir: string;
  /** API listeners: a unix socket, optionally TCP. */
  api: Endpoint[];
  /** NBD listeners: a unix socket, optionally TCP (always TLS-PSK). */
  nbd: Endpoint[];
  /** Bearer token TCP API callers must send (default: none; then TCP needs mutual TLS). */
  apiToken?: string;
  /** TLS of the TCP API listener (default: plaintext). */
  apiTls?: ApiTls;
  /** Serve NBD clients without TLS on unix sockets, seeing every volume and snapshot (default false). */
  nbdPlainUnix?: boolean;
  /** The NBD address attach hands out (default: the TCP NBD listener if any, else the unix one). */
  nbdAdvertise?: string;
  /** How long a shutdown waits for in-flight calls before cancelling them (default 30000). */
  shutdownTimeoutMs?: number;
  logger: Logger;
}

/** Where a started service listens, ports resolved. */
export interface ServiceEndpoints {
  dataDir: string;
  pid: number;
  api: string[];
  nbd: string[];
}

/** A running SAN service. Start it, then `stop()` it (runService wires stop to signals). */
export class SanService {
  readonly endpoints: ServiceEndpoints;
  readonly #client: LocalSanClient;
  readonly #api: SanApiServer;
  readonly #nbd: NbdServer;
  readonly #logger: Logger;
  readonly #shutdownTimeoutMs: number;
  #stopping: Promise<void> | null = null;

  private constructor(parts: { endpoints: ServiceEndpoints; client: LocalSanClient; api: SanApiServer; nbd: NbdServer; config: SanServiceConfig }) {
    this.endpoints = parts.endpoints;
    this.#client = parts.client;
    this.#api = parts.api;
    this.#nbd = parts.nbd;
    this.#logger = parts.config.logger;
    this.#shutdownTimeoutMs = parts.config.shutdownTimeoutMs ?? 30_000;
  }

  /** Opens the SAN (DataDirInUse if another process holds it), then binds the NBD and API listeners. */
  static async start(config: SanServiceConfig): Promise<SanService> {
    const logger = config.logger;
    // Refuse an unusable configuration before touching the data directory or binding anything.
    for (const endpoint of config.api) checkTcpAuthentication(endpoint, { token: config.apiToken, tls: config.apiTls });
    let nbd: NbdServer | null = null;
    let nbdAddress = "";
    const client = LocalSanClient.open(config.dataDir, {
      nbdAddress: () => nbdAddress,
      onRevoke: (identity) => void nbd?.dropConnections(identity),
    });
    const api = new SanApiServer({ client, logger, ...optional("token", config.apiToken), ...optional("tls", config.apiTls) });
    try {
      for (const endpoint of config.nbd) if (endpoint.kind === "unix") await clearStaleSocket(endpoint.path, "--nbd");
      nbd = new NbdServer({
        provider: new SanExports({ san: client.san, attachments: client.attachments, allowPlainUnix: config.nbdPlainUnix === true }),
        listen: config.nbd.map(formatEndpoint),
        tls: config.nbdPlainUnix === true ? "optional" : "required",
        logger: logger.child({ component: "nbd" }),
      });
      const nbdBound = await nbd.listen();
      nbdAddress = config.nbdAdvertise ?? nbdBound.find((a) => a.startsWith("tcp://")) ?? nbdBound[0] ?? "";
      const apiBound: string[] = [];
      for (const endpoint of config.api) apiBound.push(formatEndpoint(await api.listen(endpoint)));
      const endpoints = { dataDir: client.san.dataDir, pid: process.pid, api: apiBound, nbd: nbdBound };
      logger.info({ ...endpoints, nbdAdvertise: nbdAddress }, "SAN service ready");
      return new SanService({ endpoints, client, api, nbd, config });
    } catch (err) {
      await api.shutdown(0);
      await nbd?.close();
      await client.close();
      throw err instanceof NbdConfigError ? new InvalidArgumentError(err.message, { cause: err }) : err;
    }
  }

  /**
   * Stops accepting API calls and NBD connections, waits for in-flight API calls (up to the shutdown timeout) and
   * NBD requests, then commits and closes the SAN. Safe to call twice; `force` cancels API calls still running.
   */
  stop(options: { force?: boolean } = {}): Promise<void> {
    if (this.#stopping && options.force === true) this.#api.cancel();
    this.#stopping ??= this.#stop(options.force === true ? 0 : this.#shutdownTimeoutMs);
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    const started = performance.now();
    this.#logger.info({ inFlight: this.#api.inFlight, connections: this.#nbd.connectionCount }, "SAN service stopping");
    try {
      await Promise.all([this.#api.shutdown(graceMs), this.#nbd.close()]);
    } finally {
      // Close commits every acknowledged write, so nothing acknowledged is lost on a clean stop.
      await this.#client.close();
    }
    this.#logger.info({ durationMs: Math.round(performance.now() - started) }, "SAN service stopped; data committed");
  }
}

/** `{ [key]: value }` when value is defined, else `{}`. */
function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

/**
 * Runs a service until SIGTERM or SIGINT, then stops it gracefully; a second signal cancels what is still draining.
 * A signal that arrives while the service is starting stops it as soon as it is up. `onReady` is told the endpoints
 * once every listener is bound. Resolves after the SAN is closed.
 */
export async function runService(config: SanServiceConfig, onReady: (endpoints: ServiceEndpoints) => void): Promise<void> {
  let service: SanService | null = null;
  let signals = 0;
  let signalled!: () => void;
  const firstSignal = new Promise<void>((resolve) => (signalled = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    config.logger.info({ signal }, signals === 1 ? "signal received; draining" : "second signal; cancelling what is left");
    if (signals > 1) void service?.stop({ force: true });
    signalled();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    service = await SanService.start(config);
    onReady(service.endpoints);
    await firstSignal;
    await service.stop({ force: signals > 1 });
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
