// The SAN API's gRPC transport: one grpc Server per listener, one handler wrapper for every RPC (authenticate, await the
// SanClient call, map errors to a status with the sentence, log without secrets), and a draining shutdown.
import crypto from "node:crypto";
import {
  experimental,
  Server,
  ServerCredentials,
  type StatusObject,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import { InvalidArgumentError } from "../storage/errors.ts";
import { SAN_RPCS, requestSummary, responseSummary, type StreamRpc, type UnaryRpc, type WireRequest } from "./api-handlers.ts";
import { formatEndpoint, grpcTarget, type Endpoint } from "./endpoints.ts";
import { SanApiError } from "./errors.ts";
import { CHANNEL_OPTIONS, sanServiceDefinition } from "./proto.ts";
import type { SanClient } from "./san-client.ts";
import { clearStaleSocket, removeSocket, restrictSocket } from "./sockets.ts";
import { toStatus } from "./status.ts";

/**
 * TLS material of the TCP listener. With `clientCa`, a client certificate it signed authenticates a caller (mutual
 * TLS); a caller without one must send the bearer token instead.
 */
export interface ApiTls {
  certChain: Buffer;
  privateKey: Buffer;
  clientCa?: Buffer;
}

/** Options of SanApiServer. */
export interface SanApiServerOptions {
  /** What the RPCs call: the service passes its LocalSanClient. */
  client: SanClient;
  logger: Logger;
  /** Bearer token TCP callers must send (default: none, so TCP needs mutual TLS). */
  token?: string;
  /** TLS for TCP listeners (default: plaintext TCP). */
  tls?: ApiTls;
}

/** Refuses a TCP listener through which nobody could authenticate: no bearer token and no client CA. */
export function checkTcpAuthentication(endpoint: Endpoint, options: Pick<SanApiServerOptions, "token" | "tls">): void {
  if (endpoint.kind === "tcp" && options.token === undefined && options.tls?.clientCa === undefined) {
    throw new InvalidArgumentError(
      `Cannot serve the SAN API on ${formatEndpoint(endpoint)} without authentication: pass --api-token-file FILE, or --api-tls-dir DIR holding a ca.crt for client certificates.`,
    );
  }
}

/** Where a listener's handlers say they are; filled in once the listener is bound (a TCP port 0 becomes the real one). */
interface ListenerName {
  url: string;
}

/** What every handler of one listener knows about where its calls come from. */
interface CallSite {
  transport: Endpoint["kind"];
  listener: ListenerName;
  /** TCP: a client certificate or the bearer token is required. */
  needsAuth: boolean;
}

/** One bound listener. */
interface Listener {
  server: Server;
  endpoint: Endpoint;
}

/** Serves esan.v1.SanService on unix sockets (trusted by file permissions) and TCP (token or mutual TLS required). */
export class SanApiServer {
  readonly #options: SanApiServerOptions;
  readonly #listeners: Listener[] = [];
  readonly #tokenDigest: Buffer | null;
  #nextRequest = 1;
  #inFlight = 0;

  constructor(options: SanApiServerOptions) {
    this.#options = options;
    this.#tokenDigest = options.token === undefined ? null : digest(options.token);
  }

  /** Calls being handled right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Binds one endpoint and returns it as bound (a TCP port 0 replaced by the port the kernel chose). */
  async listen(endpoint: Endpoint): Promise<Endpoint> {
    const tcp = endpoint.kind === "tcp";
    const mutualTls = this.#options.tls?.clientCa !== undefined;
    checkTcpAuthentication(endpoint, this.#options);
    if (endpoint.kind === "unix") await clearStaleSocket(endpoint.path, "--api");
    const server = new Server(CHANNEL_OPTIONS);
    const name: ListenerName = { url: formatEndpoint(endpoint) };
    server.addService(sanServiceDefinition(), this.#handlers(endpoint.kind, name, tcp));
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(grpcTarget(endpoint), this.#credentials(tcp), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    const bound: Endpoint = endpoint.kind === "tcp" ? { ...endpoint, port } : endpoint;
    name.url = formatEndpoint(bound);
    if (bound.kind === "unix") restrictSocket(bound.path);
    if (tcp && !mutualTls && !this.#options.tls && !isLoopback(endpoint.host)) {
      this.#options.logger.warn({ endpoint: formatEndpoint(bound) }, "bearer tokens travel in clear text on this listener; add --api-tls-dir");
    }
    this.#listeners.push({ server, endpoint: bound });
    return bound;
  }

  /**
   * Stops accepting calls and waits for the ones in flight; after `graceMs` cancels whatever is left.
   * Removes the unix socket files it bound.
   */
  async shutdown(graceMs: number): Promise<void> {
    const stopping = this.#listeners.map(
      ({ server }) => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    );
    const timer = setTimeout(() => {
      this.#options.logger.warn({ inFlight: this.#inFlight }, "SAN API drain timed out; cancelling the calls still running");
      for (const { server } of this.#listeners) server.forceShutdown();
    }, graceMs);
    try {
      await Promise.all(stopping);
    } finally {
      clearTimeout(timer);
      for (const { endpoint } of this.#listeners) if (endpoint.kind === "unix") removeSocket(endpoint.path);
      this.#listeners.length = 0;
    }
  }

  /** Cancels every call still running (a second signal during a drain). */
  cancel(): void {
    for (const { server } of this.#listeners) server.forceShutdown();
  }

  #credentials(tcp: boolean): ServerCredentials {
    const tls = this.#options.tls;
    if (!tcp || !tls) return ServerCredentials.createInsecure();
    const pair = { cert_chain: tls.certChain, private_key: tls.privateKey };
    if (tls.clientCa === undefined) return ServerCredentials.createSsl(null, [pair], false);
    // Ask for a client certificate without requiring one at the handshake, so a caller without one still reaches the
    // handler and gets UNAUTHENTICATED (or passes with the token) instead of a bare connection failure.
    const provider = staticCertificates(tls.clientCa, tls.certChain, tls.privateKey);
    return experimental.createCertificateProviderServerCredentials(provider, provider, false);
  }

  /** The handler of every RPC, each wrapped the same way. */
  #handlers(transport: Endpoint["kind"], listener: ListenerName, needsAuth: boolean): UntypedServiceImplementation {
    const handlers: UntypedServiceImplementation = {};
    const where = { transport, listener, needsAuth };
    for (const [name, rpc] of Object.entries(SAN_RPCS)) {
      handlers[name] = rpc.kind === "unary" ? this.#unary(name, rpc, where) : this.#stream(name, rpc, where);
    }
    return handlers;
  }

  #unary(name: string, rpc: UnaryRpc, where: CallSite) {
    return (call: ServerUnaryCall<WireRequest, unknown>, callback: sendUnaryData<unknown>): void => {
      void this.#run(name, rpc.mutating, call, where, async () => {
        const response = await rpc.handle(call.request, this.#options.client);
        callback(null, response);
        return responseSummary(response);
      }).then((failure) => failure && callback(failure));
    };
  }

  #stream(name: string, rpc: StreamRpc, where: CallSite) {
    return (call: ServerWritableStream<WireRequest, unknown>): void => {
      void this.#run(name, false, call, where, async () => {
        for (const message of await rpc.handle(call.request, this.#options.client)) {
          if (call.cancelled) return { cancelled: true };
          if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
        }
        call.end();
        return {};
      }).then((failure) => failure && call.emit("error", failure));
    };
  }

  /**
   * The wrapper: authenticate, run, log. Resolves with null when `body` answered, or with the status to send.
   * Unknown errors are logged with their stack here and reach the client only as a generic sentence.
   */
  async #run(
    rpc: string,
    mutating: boolean,
    call: ServerUnaryCall<WireRequest, unknown> | ServerWritableStream<WireRequest, unknown>,
    where: CallSite,
    body: () => Promise<Record<string, unknown>>,
  ): Promise<StatusObject | null> {
    const requestId = `r${this.#nextRequest++}`;
    const started = performance.now();
    const fields = { requestId, rpc, transport: where.transport, ...requestSummary(call.request) };
    const logger = this.#options.logger;
    this.#inFlight++;
    try {
      if (where.needsAuth) this.#authenticate(call, where.listener.url);
      const outcome = await body();
      logger[mutating ? "info" : "debug"]({ ...fields, ...outcome, durationMs: elapsed(started) }, "ok");
      return null;
    } catch (err) {
      const status = toStatus(err, requestId);
      const logged = { ...fields, durationMs: elapsed(started), code: err instanceof Error && "code" in err ? err.code : "Internal" };
      if (!status.known) logger.error({ ...logged, err }, "failed unexpectedly");
      else if (err instanceof SanApiError) logger.warn(logged, err.message);
      else logger.info(logged, err instanceof Error ? err.message : String(err));
      return { code: status.code, details: status.details, metadata: status.metadata };
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * Lets a TCP call through with a client certificate the configured CA signed (verified by TLS), or with
   * `authorization: Bearer TOKEN` matching the configured token, compared in constant time.
   */
  #authenticate(call: ServerUnaryCall<WireRequest, unknown> | ServerWritableStream<WireRequest, unknown>, url: string): void {
    if (this.#options.tls?.clientCa !== undefined && call.getAuthContext().sslPeerCertificate !== undefined) return;
    const header = call.metadata.get("authorization")[0];
    if (typeof header !== "string" || !/^Bearer /i.test(header)) {
      throw new SanApiError(
        "Unauthenticated",
        `The SAN API on ${url} needs credentials: send the header 'authorization: Bearer TOKEN' (esan: --san-token-file FILE) or use a client certificate.`,
      );
    }
    const given = digest(header.slice("Bearer ".length).trim());
    if (this.#tokenDigest === null || !crypto.timingSafeEqual(given, this.#tokenDigest)) {
      throw new SanApiError("Unauthenticated", `The SAN API on ${url} refused the bearer token: it does not match the service's --api-token-file.`);
    }
  }
}

/**
 * Fixed TLS material in grpc-js's certificate-provider shape. Listeners hear from it on a later tick: grpc-js starts
 * watching only after it subscribed, and would miss an answer given during the subscription.
 */
function staticCertificates(ca: Buffer, certificate: Buffer, privateKey: Buffer): experimental.CertificateProvider {
  return {
    addCaCertificateListener: (listener) => setImmediate(() => listener({ caCertificate: ca })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (listener) => setImmediate(() => listener({ certificate, privateKey })),
    removeIdentityCertificateListener: () => undefined,
  };
}

/** Hashing first gives both sides one length, so timingSafeEqual never leaks the token's length either. */
function digest(token: string): Buffer {
  return crypto.createHash("sha256").update(token).digest();
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
