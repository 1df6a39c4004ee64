// The handshake phase: fixed newstyle greeting, client flags, and option haggling up to GO/EXPORT_NAME/ABORT/STARTTLS.
import type { NbdBackend, NbdExportProvider, NbdPeer } from "./backend.ts";
import type { ByteQueue } from "./byte-queue.ts";
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  OPTION_HEADER_BYTES,
  OPTION_NAMES,
} from "./constants.ts";
import { hasNbdErrno, NbdProtocolError } from "./errors.ts";
import { exportTerms, type Negotiated, transmissionFlags, validateBackend } from "./export-terms.ts";
import { errorText, type NbdLogger } from "./logger.ts";
import {
  infoBlockSize,
  infoExport,
  infoString,
  metaContextEntry,
  OptionSyntaxError,
  parseInfoRequest,
  parseMetaContextRequest,
  serverEntry,
} from "./option-parsing.ts";
import type { ExportTerms } from "./request-checks.ts";
import type { ReplyWriter } from "./reply-writer.ts";
import { optionReply, writeU64 } from "./wire.ts";

/** What the handshake needs from its connection. */
export interface HandshakeHost {
  readonly provider: NbdExportProvider;
  readonly peer: NbdPeer;
  readonly writer: ReplyWriter;
  readonly logger: NbdLogger;
  /** Largest option payload accepted; a bigger one ends the connection. */
  readonly maxOptionBytes: number;
  /** TLS may be started on this connection ("off" answers STARTTLS with ERR_POLICY). */
  readonly tlsAvailable: boolean;
  /** Every option but STARTTLS and ABORT is refused until TLS is up (FORCEDTLS). */
  readonly tlsRequired: boolean;
  readonly tlsActive: boolean;
}

/** An export the client chose, ready for the transmission phase. */
export interface OpenedExport {
  name: string;
  backend: NbdBackend;
  terms: ExportTerms;
  structuredReplies: boolean;
}

/** What one step of the handshake asks the connection to do next. */
export type HandshakeStep =
  | { kind: "wait" }
  | { kind: "continue" }
  | { kind: "abort" }
  | { kind: "starttls" }
  | { kind: "transmission"; opened: OpenedExport };

const WAIT: HandshakeStep = { kind: "wait" };
const CONTINUE: HandshakeStep = { kind: "continue" };

/** The 18-byte server greeting of fixed newstyle negotiation. */
export function serverGreeting(): Buffer {
  const out = Buffer.alloc(18);
  out.writeBigUInt64BE(NBD_MAGIC, 0);
  out.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  out.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
  return out;
}

/**
 * Option haggling for one connection. `step` consumes one complete message from the queue, sends its replies and
 * says what comes next; malformed framing throws NbdProtocolError (the connection hangs up), while a malformed
 * payload inside a well-framed option only earns an error reply.
 */
export class Handshake {
  readonly #host: HandshakeHost;
  #awaitingClientFlags = true;
  #noZeroes = false;
  #structuredReplies = false;
  /** The export name base:allocation was last selected for, or null. */
  #metaContextExport: string | null = null;

  constructor(host: HandshakeHost) {
    this.#host = host;
  }

  /** STARTTLS succeeded: the spec says nothing negotiated before it survives. */
  resetAfterTls(): void {
    this.#structuredReplies = false;
    this.#metaContextExport = null;
  }

  step(queue: ByteQueue): HandshakeStep | Promise<HandshakeStep> {
    if (this.#awaitingClientFlags) {
      if (queue.length < 4) return WAIT;
      const flags = queue.take(4).readUInt32BE(0);
      if ((flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) !== 0) {
        throw new NbdProtocolError(`The client sent unknown client flags 0x${flags.toString(16)}.`);
      }
      this.#noZeroes = (flags & NBD_FLAG_C_NO_ZEROES) !== 0;
      this.#awaitingClientFlags = false;
      return CONTINUE;
    }
    if (queue.length < OPTION_HEADER_BYTES) return WAIT;
    const header = queue.peek(OPTION_HEADER_BYTES);
    if (header.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) throw new NbdProtocolError("An option did not start with IHAVEOPT.");
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > this.#host.maxOptionBytes) {
      throw new NbdProtocolError(`Option ${option} carries ${length} bytes; the limit is ${this.#host.maxOptionBytes}.`);
    }
    if (queue.length < OPTION_HEADER_BYTES + length) return WAIT;
    queue.skip(OPTION_HEADER_BYTES);
    const data = queue.take(length);
    return this.#handle(option, data);
  }

  #reply(option: number, type: number, payload?: Buffer): void {
    this.#host.writer.send(optionReply(option, type, payload));
  }

  #error(option: number, type: number, message: string): HandshakeStep {
    this.#reply(option, type, Buffer.from(message, "utf8"));
    return CONTINUE;
  }

  #handle(option: number, data: Buffer): HandshakeStep | Promise<HandshakeStep> {
    const host = this.#host;
    if (host.tlsRequired && !host.tlsActive && option !== NBD_OPT_STARTTLS && option !== NBD_OPT_ABORT) {
      if (option === NBD_OPT_EXPORT_NAME) throw new NbdProtocolError("EXPORT_NAME before STARTTLS on a connection that requires TLS.");
      return this.#error(option, NBD_REP_ERR_TLS_REQD, "This server requires TLS: send NBD_OPT_STARTTLS first.");
    }
    const invalid = (err: unknown): HandshakeStep => {
      if (err instanceof OptionSyntaxError) return this.#error(option, NBD_REP_ERR_INVALID, err.message);
      throw err;
    };
    try {
      const step = this.#dispatch(option, data);
      return step instanceof Promise ? step.catch(invalid) : step;
    } catch (err) {
      return invalid(err);
    }
  }

  #dispatch(option: number, data: Buffer): HandshakeStep | Promise<HandshakeStep> {
    switch (option) {
      case NBD_OPT_ABORT:
        this.#reply(option, NBD_REP_ACK);
        return { kind: "abort" };
      case NBD_OPT_STARTTLS:
        return this.#startTls(option, data);
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.byteLength !== 0) return this.#error(option, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data.");
        this.#structuredReplies = true;
        this.#reply(option, NBD_REP_ACK);
        return CONTINUE;
      case NBD_OPT_LIST:
        if (data.byteLength !== 0) return this.#error(option, NBD_REP_ERR_INVALID, "LIST takes no data.");
        return this.#list(option);
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        return this.#metaContext(option, data);
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        return this.#infoOrGo(option, data);
      case NBD_OPT_EXPORT_NAME:
        return this.#exportName(data);
      default:
        return this.#error(option, NBD_REP_ERR_UNSUP, `Option ${OPTION_NAMES[option] ?? option} is not supported.`);
    }
  }

  #startTls(option: number, data: Buffer): HandshakeStep {
    if (!this.#host.tlsAvailable) return this.#error(option, NBD_REP_ERR_POLICY, "TLS is not offered on this listener.");
    if (this.#host.tlsActive) return this.#error(option, NBD_REP_ERR_INVALID, "TLS is already active.");
    if (data.byteLength !== 0) return this.#error(option, NBD_REP_ERR_INVALID, "STARTTLS takes no data.");
    this.#reply(option, NBD_REP_ACK);
    return { kind: "starttls" };
  }

  async #list(option: number): Promise<HandshakeStep> {
    const exports = await this.#host.provider.list(this.#host.peer);
    for (const entry of exports) this.#reply(option, NBD_REP_SERVER, serverEntry(entry.name, entry.description));
    this.#reply(option, NBD_REP_ACK);
    return CONTINUE;
  }

  #metaContext(option: number, data: Buffer): HandshakeStep {
    const setting = option === NBD_OPT_SET_META_CONTEXT;
    // SET replaces the selection even when it fails.
    if (setting) this.#metaContextExport = null;
    if (!this.#structuredReplies) return this.#error(option, NBD_REP_ERR_INVALID, "Negotiate STRUCTURED_REPLY before meta contexts.");
    const request = parseMetaContextRequest(data);
    let matched: boolean;
    if (setting) {
      matched = request.queries.includes(BASE_ALLOCATION);
    } else {
      // LIST with no queries lists everything; "base:" is the namespace wildcard.
      matched = request.queries.length === 0 || request.queries.some((q) => q === BASE_ALLOCATION || q === "base:");
    }
    if (matched) {
      this.#reply(option, NBD_REP_META_CONTEXT, metaContextEntry(setting ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION));
      if (setting) this.#metaContextExport = request.name;
    }
    this.#reply(option, NBD_REP_ACK);
    return CONTINUE;
  }

  async #infoOrGo(option: number, data: Buffer): Promise<HandshakeStep> {
    const request = parseInfoRequest(data);
    const backend = await this.#open(request.name);
    if (typeof backend === "string") return this.#refuseOpen(option, backend, request.name);
    let description: string | undefined;
    if (request.requests.includes(NBD_INFO_DESCRIPTION)) {
      const exports = await this.#host.provider.list(this.#host.peer);
      description = exports.find((e) => e.name === request.name)?.description;
    }
    const terms = exportTerms(backend, this.#negotiated(request.name));
    this.#reply(option, NBD_REP_INFO, infoExport(terms.sizeBytes, transmissionFlags(terms, backend)));
    // Sent even when not asked for (the spec allows it): a client that honours it avoids unaligned requests.
    this.#reply(option, NBD_REP_INFO, infoBlockSize(backend.minimumBlockSize, backend.preferredBlockSize, backend.maximumBlockSize));
    if (request.requests.includes(NBD_INFO_NAME)) this.#reply(option, NBD_REP_INFO, infoString(NBD_INFO_NAME, request.name));
    if (description !== undefined) this.#reply(option, NBD_REP_INFO, infoString(NBD_INFO_DESCRIPTION, description));
    this.#reply(option, NBD_REP_ACK);
    if (option === NBD_OPT_INFO) {
      backend.close?.();
      return CONTINUE;
    }
    return { kind: "transmission", opened: this.#opened(request.name, backend, terms) };
  }

  async #exportName(data: Buffer): Promise<HandshakeStep> {
    const name = data.toString("utf8");
    const backend = await this.#open(name);
    // EXPORT_NAME cannot be answered with an error: the spec says hang up.
    if (typeof backend === "string") throw new NbdProtocolError(`EXPORT_NAME of an export that cannot be opened (${backend}).`);
    const terms = exportTerms(backend, this.#negotiated(name));
    const reply = Buffer.alloc(this.#noZeroes ? 10 : 134);
    writeU64(reply, terms.sizeBytes, 0);
    reply.writeUInt16BE(transmissionFlags(terms, backend), 8);
    this.#host.writer.send(reply);
    return { kind: "transmission", opened: this.#opened(name, backend, terms) };
  }

  #negotiated(name: string): Negotiated {
    return { structuredReplies: this.#structuredReplies, baseAllocation: this.#metaContextExport === name };
  }

  #opened(name: string, backend: NbdBackend, terms: ExportTerms): OpenedExport {
    return { name, backend, terms, structuredReplies: this.#structuredReplies };
  }

  /** Opens an export, or returns why not: "unknown", "forbidden" or "failed". */
  async #open(name: string): Promise<NbdBackend | "unknown" | "forbidden" | "failed"> {
    let backend: NbdBackend;
    try {
      backend = await this.#host.provider.open(name, this.#host.peer);
    } catch (err) {
      if (hasNbdErrno(err)) return err.nbdErrno === "EPERM" ? "forbidden" : "unknown";
      this.#host.logger.error({ exportName: name, err: errorText(err) }, "Opening an NBD export failed unexpectedly");
      return "failed";
    }
    try {
      validateBackend(backend);
    } catch (err) {
      backend.close?.();
      this.#host.logger.error({ exportName: name, err: errorText(err) }, "An NBD export backend is invalid");
      return "failed";
    }
    return backend;
  }

  #refuseOpen(option: number, why: "unknown" | "forbidden" | "failed", name: string): HandshakeStep {
    if (why === "forbidden") return this.#error(option, NBD_REP_ERR_POLICY, `Export ${name} is not allowed for this client.`);
    return this.#error(option, NBD_REP_ERR_UNKNOWN, `Export ${name} is not available.`);
  }
}
