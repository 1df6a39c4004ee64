// One client connection: the state machine that feeds bytes to the handshake, TLS take-over and transmission phases.
import type net from "node:net";
import type { Duplex } from "node:stream";
import type tls from "node:tls";
import type { NbdExportProvider, NbdPeer } from "./backend.ts";
import type { BufferPool } from "./buffer-pool.ts";
import { ByteQueue } from "./byte-queue.ts";
import { NBD_PAYLOAD_DOS_BYTES, OPTION_HEADER_BYTES, REQUEST_HEADER_BYTES } from "./constants.ts";
import { NbdProtocolError } from "./errors.ts";
import { Handshake, type HandshakeStep, serverGreeting } from "./handshake.ts";
import { errorText, type NbdLogger } from "./logger.ts";
import { ReplyWriter } from "./reply-writer.ts";
import { adoptWithReusedBuffers, ReadBuffers } from "./read-buffers.ts";
import { takeOverWithPsk } from "./tls-psk.ts";
import { Transmission, type TransmissionStep } from "./transmission.ts";

/** How a listener treats TLS: "off" (NOTLS), "optional" (SELECTIVETLS, every export also plain), "required" (FORCEDTLS). */
export type NbdTlsMode = "off" | "optional" | "required";

/** Settings a connection inherits from its listener and server. */
export interface ConnectionSettings {
  provider: NbdExportProvider;
  logger: NbdLogger;
  transport: "unix" | "tcp";
  tls: NbdTlsMode;
  handshakeTimeoutMs: number;
  maxOptionBytes: number;
  /** The server's reply buffers, shared by its connections. */
  pool: BufferPool;
}

type Phase = "handshake" | "tls" | "transmission" | "closing" | "closed";

/** Replies the kernel has not taken yet beyond which we stop reading requests (a client that does not read). */
const WRITE_BACKLOG_BYTES = 8 * 1024 * 1024;
/** A client that does not wait for replies may get this far ahead of us before we stop reading. */
const SLACK_BYTES = 1024 * 1024;
/** How long a graceful close waits for the client to hang up before we do. */
const GRACEFUL_CLOSE_MS = 2000;

/** The release of a payload that needs no hold (its memory is never reused). */
function noHold(): void {}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * Drives one socket through the protocol. Bytes land in a ByteQueue; `#pump` hands complete messages to the
 * current phase until it needs more bytes, waits on an asynchronous step, or the phase ends. Violations the spec
 * cannot answer (bad magic, oversized options) end only this connection.
 */
export class NbdConnection {
  readonly id: number;
  readonly peer: NbdPeer;
  /** Resolves when the socket is gone and the backend released. */
  readonly closed: Promise<void>;
  readonly #raw: net.Socket;
  /** Reads of the plain socket, into reused buffers; null when Node's default reads are used. */
  readonly #reads: ReadBuffers | null;
  readonly #settings: ConnectionSettings;
  readonly #queue = new ByteQueue();
  readonly #writer: ReplyWriter;
  readonly #handshake: Handshake;
  #socket: Duplex;
  #phase: Phase = "handshake";
  #transmission: Transmission | null = null;
  #exportName: string | null = null;
  #tlsActive = false;
  #busy = false;
  #paused = false;
  #timer: NodeJS.Timeout | null = null;
  #markClosed!: () => void;
  readonly #onData = (chunk: Buffer): void => {
    this.#queue.push(chunk);
    this.#pump();
  };
  /** A chunk in a reused read buffer: what the pump leaves unparsed is copied before the buffer is read into again. */
  readonly #onBorrowedData = (chunk: Buffer): void => {
    this.#queue.push(chunk);
    this.#pump();
    this.#queue.own();
  };
  readonly #onDrain = (): void => {
    if (this.#paused && this.#writer.backlogBytes < WRITE_BACKLOG_BYTES) this.#pump();
  };

  /** `socket` was accepted paused: nothing has been read from it yet. */
  constructor(id: number, socket: net.Socket, settings: ConnectionSettings) {
    this.id = id;
    const reads = new ReadBuffers(settings.pool, this.#onBorrowedData);
    const adopted = adoptWithReusedBuffers(socket, reads);
    this.#reads = adopted === socket ? null : reads;
    this.#raw = adopted;
    this.#socket = adopted;
    this.#settings = settings;
    this.peer = { pskIdentity: null, transport: settings.transport };
    this.closed = new Promise((resolve) => (this.#markClosed = resolve));
    this.#writer = new ReplyWriter(adopted, settings.pool);
    const isTlsActive = (): boolean => this.#tlsActive;
    this.#handshake = new Handshake({
      provider: settings.provider,
      peer: this.peer,
      writer: this.#writer,
      logger: settings.logger,
      maxOptionBytes: settings.maxOptionBytes,
      tlsAvailable: settings.tls !== "off",
      tlsRequired: settings.tls === "required",
      get tlsActive() {
        return isTlsActive();
      },
    });
  }

  /** The export this connection is serving, or null before GO/EXPORT_NAME. */
  get exportName(): string | null {
    return this.#exportName;
  }

  /** Sends the greeting and starts reading. */
  start(): void {
    const socket = this.#raw;
    socket.setNoDelay?.(true);
    if (this.#reads === null) {
      socket.on("data", this.#onData);
      socket.resume();
    }
    socket.on("drain", this.#onDrain);
    socket.on("error", (err) => this.#lost(err));
    socket.on("close", () => this.#cleanup());
    this.#timer = setTimeout(() => this.#timedOut(), this.#settings.handshakeTimeoutMs);
    this.#timer.unref();
    this.#writer.send(serverGreeting());
    this.#log("debug", {}, "NBD connection opened");
  }

  /** Hangs up at once (detach, server shutdown, a violation). */
  destroy(): void {
    if (this.#phase === "closed") return;
    this.#writer.close();
    this.#socket.destroy();
    if (this.#socket !== this.#raw) this.#raw.destroy();
  }

  /** Server shutdown: lets requests in flight finish and their replies leave, then hangs up. */
  async shutdown(): Promise<void> {
    if (this.#transmission && this.#phase === "transmission") {
      this.#phase = "closing";
      await this.#transmission.whenIdle();
      this.#writer.flush();
    }
    this.destroy();
    await this.closed;
  }

  #pump(): void {
    if (this.#busy) return;
    try {
      while (this.#phase === "handshake" || this.#phase === "transmission") {
        if (this.#phase === "handshake") {
          const step = this.#handshake.step(this.#queue);
          if (isThenable(step)) {
            this.#busy = true;
            step.then(
              (next) => {
                this.#busy = false;
                if (this.#phase === "handshake") {
                  // #pump re-evaluates flow control; a step that stops parsing still needs reading resumed.
                  if (this.#afterHandshake(next)) this.#pump();
                  else this.#flowControl();
                } else if (next.kind === "transmission") {
                  // The connection died while the export was opening: release it.
                  next.opened.backend.close?.();
                }
              },
              (err: unknown) => this.#violation(err),
            );
            break;
          }
          if (!this.#afterHandshake(step)) break;
        } else {
          const step: TransmissionStep = this.#transmission!.step(this.#queue);
          if (step === "disconnect") {
            void this.#disconnect();
            break;
          }
          if (step !== "continue") break;
          if (this.#writer.backlogBytes >= WRITE_BACKLOG_BYTES) break;
        }
      }
    } catch (err) {
      this.#violation(err);
      return;
    }
    this.#flowControl();
  }

  /** Stops reading while the client is far ahead of us or is not reading our replies; resumes when it catches up. */
  #flowControl(): void {
    if (this.#phase !== "handshake" && this.#phase !== "transmission") return;
    const limit = this.#phase === "handshake" ? OPTION_HEADER_BYTES + this.#settings.maxOptionBytes : REQUEST_HEADER_BYTES + NBD_PAYLOAD_DOS_BYTES;
    const behind = this.#queue.length > limit + SLACK_BYTES || this.#writer.backlogBytes >= WRITE_BACKLOG_BYTES || this.#busy;
    if (behind && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    } else if (!behind && this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  /** Applies a handshake step; returns whether to keep parsing. */
  #afterHandshake(step: HandshakeStep): boolean {
    switch (step.kind) {
      case "wait":
        return false;
      case "continue":
        return true;
      case "abort":
        this.#endGracefully();
        return false;
      case "starttls":
        this.#startTls();
        return false;
      case "transmission":
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = null;
        this.#phase = "transmission";
        this.#exportName = step.opened.name;
        this.#transmission = new Transmission(
          {
            writer: this.#writer,
            pool: this.#settings.pool,
            logger: this.#settings.logger,
            resume: () => this.#pump(),
            hold: (payload) => this.#reads?.hold(payload) ?? noHold,
          },
          step.opened,
        );
        this.#log("debug", { exportName: step.opened.name }, "NBD connection entered transmission");
        return true;
    }
  }

  #startTls(): void {
    if (this.#queue.length > 0) {
      this.#violation(new NbdProtocolError("The client sent data after STARTTLS before the TLS handshake."));
      return;
    }
    this.#phase = "tls";
    const raw = this.#raw;
    raw.pause();
    raw.removeListener("data", this.#onData);
    // TLS reads through its own buffers from here on; the plain read buffer is not used again.
    this.#reads?.close();
    raw.removeListener("drain", this.#onDrain);
    this.#writer.flush();
    // The ACK must reach the socket before TLS owns it; the write callback runs after every earlier write.
    raw.write(Buffer.alloc(0), () => {
      if (this.#phase !== "tls") return;
      let identity: string | null = null;
      const secure: tls.TLSSocket = takeOverWithPsk(raw, {
        pskKey: (id) => this.#settings.provider.pskKey(id),
        onIdentity: (id) => (identity = id),
      });
      this.#socket = secure;
      this.#writer.retarget(secure);
      secure.on("error", (err: Error) => this.#lost(err, "NBD TLS session failed"));
      secure.on("close", () => this.#cleanup());
      secure.once("secure", () => {
        if (this.#phase !== "tls") return;
        // A detach between the key lookup and here revoked the identity: dropConnections could not see us yet.
        if (identity === null || this.#settings.provider.pskKey(identity) === null) {
          this.#log("info", {}, "NBD TLS identity was revoked during the handshake; closing");
          this.destroy();
          return;
        }
        this.peer.pskIdentity = identity;
        this.#tlsActive = true;
        this.#handshake.resetAfterTls();
        this.#phase = "handshake";
        secure.on("data", this.#onData);
        secure.on("drain", this.#onDrain);
        this.#log("debug", { tlsProtocol: secure.getProtocol(), cipher: secure.getCipher()?.name }, "NBD TLS session established");
        this.#pump();
      });
    });
  }

  async #disconnect(): Promise<void> {
    this.#phase = "closing";
    await this.#transmission?.whenIdle();
    this.#endGracefully();
  }

  #endGracefully(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closing";
    this.#writer.flush();
    this.#socket.end();
    setTimeout(() => this.destroy(), GRACEFUL_CLOSE_MS).unref();
  }

  #timedOut(): void {
    if (this.#phase === "transmission" || this.#phase === "closed") return;
    this.#log("debug", { timeoutMs: this.#settings.handshakeTimeoutMs }, "NBD handshake timed out; closing");
    this.destroy();
  }

  #violation(err: unknown): void {
    if (err instanceof NbdProtocolError) this.#log("debug", { reason: err.message }, "NBD protocol violation; closing");
    else this.#log("error", { err: errorText(err) }, "NBD connection failed unexpectedly; closing");
    this.destroy();
  }

  #lost(err: Error, message = "NBD socket error"): void {
    this.#log("debug", { err: errorText(err) }, message);
    this.destroy();
  }

  #cleanup(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    if (this.#timer) clearTimeout(this.#timer);
    this.#writer.close();
    this.#transmission?.close();
    this.#queue.clear();
    this.#reads?.close();
    if (this.#socket !== this.#raw) this.#raw.destroy();
    this.#socket.destroy();
    this.#log("debug", {}, "NBD connection closed");
    this.#markClosed();
  }

  #log(level: "debug" | "info" | "warn" | "error", fields: Record<string, unknown>, message: string): void {
    this.#settings.logger[level]({ connection: this.id, transport: this.peer.transport, pskIdentity: this.peer.pskIdentity, ...fields }, message);
  }
}
