// A minimal NBD client over raw sockets for protocol tests: sends exactly the bytes a test asks for.
import net from "node:net";
import tls from "node:tls";
import { ByteQueue } from "../../src/nbd/byte-queue.ts";
import {
  BASE_ALLOCATION,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_OPT_GO,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_INFO,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
} from "../../src/nbd/constants.ts";

/** One option reply as received. */
export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

/** One structured reply chunk as received. */
export interface StructuredChunk {
  flags: number;
  type: number;
  handle: bigint;
  payload: Buffer;
}

/** A request to send; `offset` and `handle` are bigints so tests can send any 64-bit value. */
export interface RawRequest {
  type: number;
  flags?: number;
  handle?: bigint;
  offset?: bigint | number;
  length: number;
  payload?: Buffer;
}

/** Where to connect: a unix socket path or a TCP port on 127.0.0.1. */
export type RawTarget = string | { port: number };

/** Builds an option: IHAVEOPT, option, length, data. */
export function optionBytes(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(16);
  header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.byteLength, 12);
  return Buffer.concat([header, data]);
}

/** Builds a request header (plus payload). */
export function requestBytes(request: RawRequest): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  header.writeUInt16BE(request.flags ?? 0, 4);
  header.writeUInt16BE(request.type, 6);
  header.writeBigUInt64BE(request.handle ?? 1n, 8);
  header.writeBigUInt64BE(BigInt(request.offset ?? 0), 16);
  header.writeUInt32BE(request.length, 24);
  return request.payload ? Buffer.concat([header, request.payload]) : header;
}

/** GO / INFO payload: name, then information requests. */
export function goPayload(name: string, infos: number[] = [NBD_INFO_BLOCK_SIZE]): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const out = Buffer.alloc(4 + nameBytes.byteLength + 2 + 2 * infos.length);
  out.writeUInt32BE(nameBytes.byteLength, 0);
  nameBytes.copy(out, 4);
  out.writeUInt16BE(infos.length, 4 + nameBytes.byteLength);
  infos.forEach((info, i) => out.writeUInt16BE(info, 6 + nameBytes.byteLength + 2 * i));
  return out;
}

/** SET/LIST_META_CONTEXT payload: name, then queries. */
export function metaPayload(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    return b;
  };
  parts.push(u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length));
  for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q));
  return Buffer.concat(parts);
}

/** A raw NBD client; every read has a timeout so a test never hangs on a silent server. */
export class RawNbdClient {
  #socket: net.Socket | tls.TLSSocket;
  readonly #raw: net.Socket;
  readonly #queue = new ByteQueue();
  #waiter: (() => void) | null = null;
  #ended = false;
  /** Resolves when the server closed the connection (or it broke). */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.#raw = socket;
    this.#socket = socket;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    this.#listen(socket);
    socket.on("error", () => {});
  }

  static connect(target: RawTarget): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const socket = typeof target === "string" ? net.connect(target) : net.connect(target.port, "127.0.0.1");
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RawNbdClient(socket));
      });
    });
  }

  /** True once the server hung up. */
  get ended(): boolean {
    return this.#ended;
  }

  #listen(stream: net.Socket | tls.TLSSocket): void {
    stream.on("data", (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#wake();
    });
    stream.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
    stream.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  write(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  /** Reads exactly `n` bytes; rejects if the server closes first or nothing arrives in time. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length < n) {
      if (this.#ended) throw new Error(`The server closed the connection with ${this.#queue.length} of ${n} bytes read.`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${n} bytes (have ${this.#queue.length}).`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return Buffer.from(this.#queue.take(n));
  }

  /** Waits for the server to hang up; rejects if it has not within the timeout. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("The server did not close the connection.")), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
  }

  /** Reads the 18-byte greeting and answers with client flags. */
  async greet(clientFlags = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES): Promise<Buffer> {
    const greeting = await this.read(18);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags, 0);
    this.write(flags);
    return greeting;
  }

  sendOption(option: number, data?: Buffer): void {
    this.write(optionBytes(option, data));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(20);
    const length = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await this.read(length) };
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendOption(option, data);
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      replies.push(reply);
      if (reply.type === NBD_REP_ACK || reply.type >= 0x8000_0000) return replies;
    }
  }

  /** STARTTLS, then a TLS-PSK client handshake; resolves with the negotiated protocol. */
  async startTls(identity: string, key: Buffer, options: { maxVersion?: tls.SecureVersion } = {}): Promise<string> {
    const [reply] = await this.option(NBD_OPT_STARTTLS);
    if (reply?.type !== NBD_REP_ACK) throw new Error(`STARTTLS was refused with reply type 0x${reply?.type.toString(16)}.`);
    this.#raw.removeAllListeners("data");
    const secure = tls.connect({
      socket: this.#raw,
      pskCallback: () => ({ identity, psk: key }),
      ciphers: "TLS_AES_128_GCM_SHA256:ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256",
      checkServerIdentity: () => undefined,
      maxVersion: options.maxVersion ?? "TLSv1.3",
    });
    this.#socket = secure;
    this.#listen(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    secure.on("error", () => {});
    return secure.getProtocol() ?? "unknown";
  }

  /** STRUCTURED_REPLY (optional), SET_META_CONTEXT base:allocation (optional), then GO; returns size and flags. */
  async negotiate(name: string, options: { structured?: boolean; meta?: boolean } = {}): Promise<{ sizeBytes: number; flags: number }> {
    const structured = options.structured ?? true;
    if (structured) await this.option(NBD_OPT_STRUCTURED_REPLY);
    if (structured && (options.meta ?? true)) await this.option(NBD_OPT_SET_META_CONTEXT, metaPayload(name, [BASE_ALLOCATION]));
    const replies = await this.option(NBD_OPT_GO, goPayload(name));
    const last = replies[replies.length - 1]!;
    if (last.type !== NBD_REP_ACK) throw new Error(`GO ${name} failed with 0x${last.type.toString(16)}: ${last.data.toString()}`);
    const info = replies.find((r) => r.type === NBD_REP_INFO && r.data.readUInt16BE(0) === 0)!;
    return { sizeBytes: Number(info.data.readBigUInt64BE(2)), flags: info.data.readUInt16BE(10) };
  }

  request(request: RawRequest): void {
    this.write(requestBytes(request));
  }

  /** Reads a simple reply; `dataLength` bytes follow it when the error is 0 (a READ). */
  async readSimpleReply(dataLength = 0): Promise<{ errno: number; handle: bigint; data: Buffer }> {
    const header = await this.read(16);
    if (header.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw new Error("Not a simple reply.");
    const errno = header.readUInt32BE(4);
    const data = errno === 0 && dataLength > 0 ? await this.read(dataLength) : Buffer.alloc(0);
    return { errno, handle: header.readBigUInt64BE(8), data };
  }

  /** Reads one reply of either kind; simple replies carry no data here (use readSimpleReply for simple READs). */
  async readAnyReply(): Promise<{ kind: "simple"; errno: number; handle: bigint } | ({ kind: "chunk" } & StructuredChunk)> {
    const magic = (await this.read(4)).readUInt32BE(0);
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      const rest = await this.read(12);
      return { kind: "simple", errno: rest.readUInt32BE(0), handle: rest.readBigUInt64BE(4) };
    }
    if (magic !== NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`Unknown reply magic 0x${magic.toString(16)}.`);
    const rest = await this.read(16);
    const length = rest.readUInt32BE(12);
    return { kind: "chunk", flags: rest.readUInt16BE(0), type: rest.readUInt16BE(2), handle: rest.readBigUInt64BE(4), payload: await this.read(length, 20_000) };
  }

  /** The error of a reply (simple errno, or the errno of an error chunk), 0 for success. */
  static errnoOf(reply: Awaited<ReturnType<RawNbdClient["readAnyReply"]>>): number {
    if (reply.kind === "simple") return reply.errno;
    return (reply.type & 0x8000) !== 0 ? reply.payload.readUInt32BE(0) : 0;
  }

  destroy(): void {
    this.#socket.destroy();
    this.#raw.destroy();
  }
}
