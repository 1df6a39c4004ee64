// The transmission phase: parses pipelined requests, checks them once, runs them on the backend and replies.
import type { NbdBackend, NbdExtent } from "./backend.ts";
import { describeExtents } from "./block-status.ts";
import type { BufferPool } from "./buffer-pool.ts";
import type { ByteQueue } from "./byte-queue.ts";
import {
  BASE_ALLOCATION_ID,
  COMMAND_NAMES,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_ERRNO,
  NBD_PAYLOAD_DOS_BYTES,
  NBD_REQUEST_MAGIC,
  type NbdWireErrno,
  REQUEST_HEADER_BYTES,
  SIMPLE_REPLY_BYTES,
} from "./constants.ts";
import { NbdProtocolError, wireErrno } from "./errors.ts";
import type { OpenedExport } from "./handshake.ts";
import { errorText, type NbdLogger } from "./logger.ts";
import { checkRequest, type ExportTerms } from "./request-checks.ts";
import type { ReplyWriter } from "./reply-writer.ts";
import { blockStatusChunk, errorChunk, type Handle, OFFSET_DATA_HEADER_BYTES, offsetDataHeader, readU64, simpleReply } from "./wire.ts";

/** What the transmission phase needs from its connection. */
export interface TransmissionHost {
  readonly writer: ReplyWriter;
  /** Where read replies get their buffers. */
  readonly pool: BufferPool;
  readonly logger: NbdLogger;
  /** An asynchronous request finished: parsing may continue if it had stopped at the in-flight limit. */
  resume(): void;
  /**
   * Keeps the memory under `payload` (a view of a received chunk) from reuse while an asynchronous request reads
   * it; the returned function ends the hold.
   */
  hold(payload: Buffer): () => void;
}

/** What one step asks the connection to do next. */
export type TransmissionStep = "wait" | "continue" | "busy" | "disconnect";

/** One parsed request. */
interface Request {
  handle: Handle;
  type: number;
  flags: number;
  offset: number;
  length: number;
}

/** A WRITE whose payload has not fully arrived: its bytes are copied in as they come. */
interface PartialWrite {
  request: Request;
  payload: Buffer;
  filled: number;
}

/** Payloads up to this size that straddle socket reads are assembled in a reusable per-connection buffer. */
const SCRATCH_MAX_BYTES = 4 * 1024 * 1024;

/** Asynchronous requests one connection may have in flight before parsing pauses. */
const MAX_IN_FLIGHT = 64;
/** TRIM and WRITE_ZEROES longer than this run in slices, yielding to the event loop between them. */
const SLICE_BYTES = 1024 * 1024 * 1024;

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs the transmission phase of one connection. Requests are handled as soon as they are parsed; a backend that
 * answers synchronously is never wrapped in a promise, so a pipelined burst costs one pass and one batched write.
 * Replies may go out of order (asynchronous backends); each is whole, and FLUSH only follows completed writes.
 */
export class Transmission {
  readonly #host: TransmissionHost;
  readonly #backend: NbdBackend;
  readonly #terms: ExportTerms;
  readonly #structured: boolean;
  readonly #payloadLimit: number;
  readonly #exportName: string;
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #closed = false;
  /**
   * Reused to assemble WRITE payloads that arrive split across socket reads: fresh 256 KiB..4 MiB buffers per
   * request would keep V8's major GC busy. Lent to one request at a time; an asynchronous backend keeps it until
   * its promise settles, and meanwhile payloads get fresh buffers.
   */
  #scratch: Buffer | null = null;
  #scratchLent = false;
  /** The asynchronous request holding the scratch buffer, if any. */
  #scratchHolder: Request | null = null;
  #partialWrite: PartialWrite | null = null;
  readonly #lendScratch = (n: number): Buffer => {
    if (this.#scratchLent || n > SCRATCH_MAX_BYTES) return Buffer.allocUnsafe(n);
    if (!this.#scratch || this.#scratch.byteLength < n) this.#scratch = Buffer.allocUnsafe(Math.max(n, 256 * 1024));
    this.#scratchLent = true;
    return this.#scratch;
  };

  constructor(host: TransmissionHost, opened: OpenedExport) {
    this.#host = host;
    this.#backend = opened.backend;
    this.#terms = opened.terms;
    this.#structured = opened.structuredReplies;
    this.#exportName = opened.name;
    this.#payloadLimit = Math.max(NBD_PAYLOAD_DOS_BYTES, opened.terms.maximumBlockSize);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops replying and releases the backend. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#backend.close?.();
  }

  /** Parses and starts the next request in `queue`; framing errors throw NbdProtocolError. */
  step(queue: ByteQueue): TransmissionStep {
    if (this.#partialWrite !== null) return this.#continueWrite(queue);
    if (this.#inFlight >= MAX_IN_FLIGHT) return "busy";
    if (queue.length < REQUEST_HEADER_BYTES) return "wait";
    const header = queue.peek(REQUEST_HEADER_BYTES);
    if (header.readUInt32BE(0) !== NBD_REQUEST_MAGIC) throw new NbdProtocolError("A request did not start with the request magic.");
    const request: Request = {
      flags: header.readUInt16BE(4),
      type: header.readUInt16BE(6),
      handle: { high: header.readUInt32BE(8), low: header.readUInt32BE(12) },
      offset: readU64(header, 16),
      length: header.readUInt32BE(24),
    };
    queue.skip(REQUEST_HEADER_BYTES);
    if (request.type === NBD_CMD_WRITE) return this.#startWrite(request, queue);
    if (request.type === NBD_CMD_DISC) return "disconnect";
    this.#start(request, null);
    return "continue";
  }

  /** Takes a WRITE's payload: a view when it has arrived whole, else a buffer that later reads fill. */
  #startWrite(request: Request, queue: ByteQueue): TransmissionStep {
    if (request.length > this.#payloadLimit) {
      throw new NbdProtocolError(`A WRITE of ${request.length} bytes exceeds the ${this.#payloadLimit}-byte payload limit.`);
    }
    if (queue.length >= request.length) {
      this.#start(request, queue.take(request.length, this.#lendScratch));
      return "continue";
    }
    const payload = this.#lendScratch(request.length).subarray(0, request.length);
    const filled = queue.length;
    queue.takeInto(payload, 0, filled);
    this.#partialWrite = { request, payload, filled };
    return "wait";
  }

  /** Copies more of a partial WRITE's payload in; starts the request once it is whole. */
  #continueWrite(queue: ByteQueue): TransmissionStep {
    const partial = this.#partialWrite!;
    const n = Math.min(queue.length, partial.payload.byteLength - partial.filled);
    queue.takeInto(partial.payload, partial.filled, n);
    partial.filled += n;
    if (partial.filled < partial.payload.byteLength) return "wait";
    this.#partialWrite = null;
    this.#start(partial.request, partial.payload);
    return "continue";
  }

  /** Checks a parsed request and runs it, or answers the refusal. */
  #start(request: Request, payload: Buffer | null): void {
    const refusal = checkRequest(request, this.#terms);
    if (refusal) {
      this.#replyError(request, refusal.errno, refusal.message);
    } else {
      this.#dispatch(request, payload);
    }
    // A synchronous backend is done with the payload; an asynchronous one returns the scratch when it settles.
    if (this.#scratchLent && this.#scratchHolder === null) this.#scratchLent = false;
  }

  #dispatch(request: Request, payload: Buffer | null): void {
    const backend = this.#backend;
    const { offset, length, flags } = request;
    // FUA goes to the backend only if it can honour it; otherwise #withFua adds a flush after the operation.
    const fua = (flags & NBD_CMD_FLAG_FUA) !== 0;
    const backendFua = fua && backend.canFua();
    switch (request.type) {
      case NBD_CMD_READ:
        this.#read(request);
        return;
      case NBD_CMD_WRITE:
        this.#run(request, () => this.#withFua(fua, () => backend.pwrite(offset, payload!, { fua: backendFua })), () => this.#replyOk(request), payload);
        return;
      case NBD_CMD_FLUSH:
        this.#run(request, () => backend.flush(), () => this.#replyOk(request));
        return;
      case NBD_CMD_TRIM:
        this.#run(request, () => this.#sliced(request, (at, n) => this.#withFua(fua, () => backend.trim(at, n, { fua: backendFua }))), () => this.#replyOk(request));
        return;
      case NBD_CMD_WRITE_ZEROES:
        this.#zero(request, fua);
        return;
      case NBD_CMD_BLOCK_STATUS:
        this.#run(
          request,
          () => (backend.canExtents() ? backend.extents(offset, length) : [{ offset, length, hole: false, zero: false }]),
          (extents) => this.#replyBlockStatus(request, extents),
        );
        return;
    }
  }

  /**
   * Reads straight into a pool buffer behind room for the reply header, so the reply leaves as one piece and the
   * buffer returns to the pool once the socket has sent it.
   */
  #read(request: Request): void {
    const headerBytes = this.#structured ? OFFSET_DATA_HEADER_BYTES : SIMPLE_REPLY_BYTES;
    const pool = this.#host.pool;
    const pooled = pool.acquire(headerBytes + request.length);
    const reply = pooled.subarray(0, headerBytes + request.length);
    this.#run(
      request,
      () => this.#backend.pread(request.offset, reply.subarray(headerBytes)),
      () => {
        if (this.#structured) offsetDataHeader(request.handle, request.offset, request.length, reply);
        else simpleReply(request.handle, 0, reply);
        this.#host.writer.sendPooled(reply, pooled);
      },
      null,
      () => pool.release(pooled),
    );
  }

  #zero(request: Request, fua: boolean): void {
    const backend = this.#backend;
    const backendFua = fua && backend.canFua();
    const noHole = (request.flags & NBD_CMD_FLAG_NO_HOLE) !== 0;
    const fastZero = (request.flags & NBD_CMD_FLAG_FAST_ZERO) !== 0;
    if (fastZero && !(backend.canZero() && backend.canFastZero())) {
      this.#replyError(request, "ENOTSUP", "This export cannot zero faster than it writes.");
      return;
    }
    const zeroSlice = backend.canZero()
      ? (at: number, n: number) => this.#withFua(fua, () => backend.zero(at, n, { fua: backendFua, noHole, fastZero }))
      : (at: number, n: number) => this.#withFua(fua, () => this.#writeZeroes(at, n, backendFua));
    this.#run(request, () => this.#sliced(request, zeroSlice), () => this.#replyOk(request));
  }

  /** Emulates WRITE_ZEROES with writes of a shared zero buffer, for backends without `zero`. */
  async #writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    const step = Math.min(length, this.#terms.maximumBlockSize, 1024 * 1024);
    const zeroes = Buffer.alloc(step);
    for (let done = 0; done < length; done += step) {
      const n = Math.min(step, length - done);
      await this.#backend.pwrite(offset + done, n === step ? zeroes : zeroes.subarray(0, n), { fua });
    }
  }

  /** Runs `op` over the request's range, in 1 GiB slices when it is longer, so one huge TRIM cannot stall the loop. */
  #sliced(request: Request, op: (offset: number, length: number) => void | Promise<void>): void | Promise<void> {
    if (request.length <= SLICE_BYTES) return op(request.offset, request.length);
    return (async () => {
      const end = request.offset + request.length;
      for (let at = request.offset; at < end; at += SLICE_BYTES) {
        await op(at, Math.min(SLICE_BYTES, end - at));
        await yieldToLoop();
      }
    })();
  }

  /** Adds a flush after `op` when the client asked for FUA and the backend cannot do it itself. */
  #withFua(fua: boolean, op: () => void | Promise<void>): void | Promise<void> {
    if (!fua || this.#backend.canFua()) return op();
    const result = op();
    return isThenable(result) ? result.then(() => this.#backend.flush()) : this.#backend.flush();
  }

  /**
   * Calls a backend operation; replies at once when it answers synchronously, later when it returns a promise.
   * `onFailure` runs before the error reply (it releases what the operation was given).
   */
  #run<T>(request: Request, op: () => T | Promise<T>, done: (value: T) => void, payload: Buffer | null = null, onFailure?: () => void): void {
    let result: T | Promise<T>;
    try {
      result = op();
    } catch (err) {
      onFailure?.();
      this.#fail(request, err);
      return;
    }
    if (!isThenable(result)) {
      this.#finish(request, done, result);
      return;
    }
    this.#inFlight++;
    const release = this.#holdPayload(request, payload);
    result.then(
      (value) => {
        release();
        if (!this.#closed) this.#finish(request, done, value);
      },
      (err: unknown) => {
        release();
        onFailure?.();
        if (!this.#closed) this.#fail(request, err);
      },
    );
  }

  /** Keeps an asynchronous request's payload intact until it settles; returns what to call then. */
  #holdPayload(request: Request, payload: Buffer | null): () => void {
    if (payload === null) return () => this.#settled();
    if (this.#scratchLent && payload.buffer === this.#scratch?.buffer) {
      this.#scratchHolder = request;
      return () => {
        if (this.#scratchHolder === request) {
          this.#scratchHolder = null;
          this.#scratchLent = false;
        }
        this.#settled();
      };
    }
    const unhold = this.#host.hold(payload);
    return () => {
      unhold();
      this.#settled();
    };
  }

  #finish<T>(request: Request, done: (value: T) => void, value: T): void {
    try {
      done(value);
    } catch (err) {
      this.#fail(request, err);
    }
  }

  #settled(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) {
      const waiters = this.#idle;
      this.#idle = [];
      for (const wake of waiters) wake();
    }
    if (!this.#closed) this.#host.resume();
  }

  #fail(request: Request, err: unknown): void {
    const { errno, expected } = wireErrno(err);
    if (!expected) {
      this.#host.logger.warn(
        { exportName: this.#exportName, command: COMMAND_NAMES[request.type], offset: request.offset, length: request.length, err: errorText(err) },
        "An NBD backend failed unexpectedly; answered EIO",
      );
    }
    this.#replyError(request, errno, expected ? errorText(err) : "Internal error.");
  }

  #replyOk(request: Request): void {
    simpleReply(request.handle, 0, this.#host.writer.reserve(SIMPLE_REPLY_BYTES));
  }

  #replyError(request: Request, errno: NbdWireErrno, message: string): void {
    const code = NBD_ERRNO[errno];
    this.#host.writer.send(this.#structured ? errorChunk(request.handle, code, message) : simpleReply(request.handle, code));
  }

  #replyBlockStatus(request: Request, extents: NbdExtent[]): void {
    const reqOne = (request.flags & NBD_CMD_FLAG_REQ_ONE) !== 0;
    const { lengths, flags } = describeExtents(extents, request.offset, request.length, this.#terms.minimumBlockSize, { reqOne });
    // describeExtents always covers a non-empty request; the fallback (status 0, always safe) guards that promise.
    if (lengths.length === 0) this.#host.writer.send(blockStatusChunk(request.handle, BASE_ALLOCATION_ID, [request.length], [0]));
    else this.#host.writer.send(blockStatusChunk(request.handle, BASE_ALLOCATION_ID, lengths, flags));
  }
}
