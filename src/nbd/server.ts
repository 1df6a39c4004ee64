// The NBD server: listeners on unix sockets and TCP, the live connections, shutdown and per-identity disconnects.
import fs from "node:fs";
import net from "node:net";
import type { NbdExportProvider } from "./backend.ts";
import { BufferPool } from "./buffer-pool.ts";
import { NbdConfigError } from "./config-error.ts";
import { type ConnectionSettings, NbdConnection, type NbdTlsMode } from "./connection.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "./listen-address.ts";
import { errorText, type NbdLogger, silentLogger } from "./logger.ts";

/** Options of NbdServer; every field but `provider` and `listen` has a default. */
export interface NbdServerOptions {
  /** The exports, their authorization and the PSK keys. */
  provider: NbdExportProvider;
  /** Where to listen: "unix:///PATH" and/or "tcp://HOST:PORT" (port 0 picks a free port; see `addresses`). */
  listen: string[];
  /**
   * TLS on unix sockets: "off", "optional" (a client may STARTTLS; plain clients are served too) or "required".
   * Default "required". TCP listeners always require TLS-PSK whatever this says, and refuse to start with "off".
   */
  tls?: NbdTlsMode;
  /** A connection that has not reached the transmission phase by then is dropped. Default 30000. */
  handshakeTimeoutMs?: number;
  /** Largest option payload a client may send during the handshake; more ends the connection. Default 65536. */
  maxOptionBytes?: number;
  /** Most simultaneous connections per listener. Default 1024. */
  maxConnections?: number;
  /** Permissions of unix socket files. Default 0o600. */
  unixSocketMode?: number;
  /** Where the server logs (a pino logger fits). Default: silent. Key material is never logged. */
  logger?: NbdLogger;
}

/**
 * Serves the provider's exports over NBD (fixed newstyle, structured replies, base:allocation, STARTTLS with
 * TLS-PSK). Create it, `await listen()`, and `await close()` to stop.
 */
export class NbdServer {
  readonly #options: Required<Omit<NbdServerOptions, "listen">>;
  readonly #addresses: ListenAddress[];
  readonly #listeners: net.Server[] = [];
  readonly #connections = new Set<NbdConnection>();
  readonly #pool = new BufferPool();
  #bound: string[] = [];
  #nextId = 1;
  #closing: Promise<void> | null = null;

  constructor(options: NbdServerOptions) {
    this.#options = {
      provider: options.provider,
      tls: options.tls ?? "required",
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
      maxOptionBytes: options.maxOptionBytes ?? 64 * 1024,
      maxConnections: options.maxConnections ?? 1024,
      unixSocketMode: options.unixSocketMode ?? 0o600,
      logger: options.logger ?? silentLogger,
    };
    if (options.listen.length === 0) throw new NbdConfigError("The NBD server needs at least one listen address.");
    this.#addresses = options.listen.map(parseListenAddress);
    if (this.#options.tls === "off" && this.#addresses.some((a) => a.transport === "tcp")) {
      throw new NbdConfigError("TCP listeners require TLS-PSK; the NBD server cannot use tls: \"off\" with a tcp:// address.");
    }
  }

  /** The bound addresses in URL form, ports resolved (empty before `listen`). */
  get addresses(): string[] {
    return [...this.#bound];
  }

  /** Live connections, in any phase. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Binds every listen address; resolves with their URLs (a tcp port 0 replaced by the chosen port). */
  async listen(): Promise<string[]> {
    if (this.#listeners.length > 0) throw new NbdConfigError("The NBD server is already listening.");
    try {
      for (const address of this.#addresses) this.#bound.push(await this.#bind(address));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#options.logger.info({ addresses: this.#bound }, "NBD server listening");
    return this.addresses;
  }

  /** Stops listening, lets in-flight requests finish, drops every connection; resolves when all are gone. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Hangs up every live connection authenticated as `pskIdentity` (detach); returns how many were dropped. */
  dropConnections(pskIdentity: string): number {
    const dropped = this.#drop((connection) => connection.peer.pskIdentity === pskIdentity);
    if (dropped > 0) this.#options.logger.info({ pskIdentity, dropped }, "Dropped NBD connections of a PSK identity");
    return dropped;
  }

  /**
   * Hangs up every live connection serving `exportName`; returns how many were dropped. Call it when the image
   * behind an export is deleted: a new image of the same name must never be served to a connection opened earlier.
   */
  dropExportConnections(exportName: string): number {
    const dropped = this.#drop((connection) => connection.exportName === exportName);
    if (dropped > 0) this.#options.logger.info({ exportName, dropped }, "Dropped NBD connections of an export");
    return dropped;
  }

  #drop(matches: (connection: NbdConnection) => boolean): number {
    let dropped = 0;
    for (const connection of this.#connections) {
      if (matches(connection)) {
        connection.destroy();
        dropped++;
      }
    }
    return dropped;
  }

  async #bind(address: ListenAddress): Promise<string> {
    const tlsMode: NbdTlsMode = address.transport === "tcp" ? "required" : this.#options.tls;
    const settings: ConnectionSettings = {
      provider: this.#options.provider,
      logger: this.#options.logger,
      transport: address.transport,
      tls: tlsMode,
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
      maxOptionBytes: this.#options.maxOptionBytes,
      pool: this.#pool,
    };
    // Paused: a connection re-creates its socket to read into reused buffers, before the first byte is read. That
    // hands the socket's handle over, so Node's own maxConnections cannot count it; #accept counts instead.
    const live = new Set<NbdConnection>();
    const listener = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.#accept(socket, settings, live));
    listener.on("error", (err) => this.#options.logger.error({ err: errorText(err) }, "NBD listener error"));
    if (address.transport === "unix") removeStaleSocket(address.path);
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      const done = (): void => {
        listener.off("error", reject);
        resolve();
      };
      if (address.transport === "unix") listener.listen(address.path, done);
      else listener.listen(address.port, address.host, done);
    }).catch((err: unknown) => {
      throw new NbdConfigError(`Cannot listen on ${formatListenAddress(address)}: ${errorText(err)}`, { cause: err });
    });
    this.#listeners.push(listener);
    if (address.transport === "unix") {
      fs.chmodSync(address.path, this.#options.unixSocketMode);
      return formatListenAddress(address);
    }
    const bound = listener.address() as net.AddressInfo;
    return formatListenAddress({ transport: "tcp", host: address.host, port: bound.port });
  }

  /** Starts serving an accepted socket; `live` holds the connections of its listener. */
  #accept(socket: net.Socket, settings: ConnectionSettings, live: Set<NbdConnection>): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    if (live.size >= this.#options.maxConnections) {
      this.#options.logger.warn({ maxConnections: this.#options.maxConnections }, "NBD listener is at its connection limit; dropped a new connection");
      socket.destroy();
      return;
    }
    const connection = new NbdConnection(this.#nextId++, socket, settings);
    this.#connections.add(connection);
    live.add(connection);
    void connection.closed.then(() => {
      this.#connections.delete(connection);
      live.delete(connection);
    });
    connection.start();
  }

  async #close(): Promise<void> {
    const stopped = this.#listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve())));
    await Promise.all([...this.#connections].map((connection) => connection.shutdown()));
    await Promise.all(stopped);
    this.#listeners.length = 0;
    if (this.#bound.length > 0) this.#options.logger.info({ addresses: this.#bound }, "NBD server stopped");
  }
}

/** Removes a socket file left by a previous run, but never a regular file someone pointed us at by mistake. */
function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
