// The one writer of a connection's socket: whole replies, queued in order and sent in as few syscalls as sensible.
import type { Duplex } from "node:stream";
import type { BufferPool } from "./buffer-pool.ts";

/** Replies up to this size are copied into the batch buffer; bigger ones (read data) go out as they are. */
const COPY_LIMIT_BYTES = 64 * 1024;
/** Size of a batch buffer: room for a queue depth of 32 replies to 4 KiB reads, or many small replies. */
const BATCH_BYTES = 256 * 1024;

/**
 * Queues replies and writes them when the current callback ends (a microtask), so every request handled in one
 * read from the socket (a pipelined burst) leaves in one write. Deferring further, to setImmediate, saved no
 * measurable CPU but added ~30 µs to every queue-depth-1 request. Each reply is queued whole, so replies never
 * interleave.
 *
 * Small replies are copied into a batch buffer from the pool, so a burst becomes one socket write of one buffer
 * (no per-reply allocation, no writev of hundreds of pieces). Large ones are queued by reference; pooled ones go
 * back to the pool once the socket is done with them.
 */
export class ReplyWriter {
  #socket: Duplex;
  readonly #pool: BufferPool;
  /** Buffers to write, in order. */
  #queue: Buffer[] = [];
  /** Per queued buffer: the pool buffer to release once it is written, or null. */
  #releases: (Buffer | null)[] = [];
  /** Pool buffers the socket holds, released in write order as their write callbacks arrive. */
  readonly #inSocket: Buffer[] = [];
  #batch: Buffer | null = null;
  /** Where the part of the batch not queued yet begins, and where its filled part ends. */
  #batchStart = 0;
  #batchEnd = 0;
  #scheduled = false;
  #closed = false;
  readonly #flushSoon = (): void => {
    this.#scheduled = false;
    this.flush();
  };
  readonly #onWritten = (): void => {
    const buffer = this.#inSocket.shift();
    if (buffer !== undefined) this.#pool.release(buffer);
  };

  constructor(socket: Duplex, pool: BufferPool) {
    this.#socket = socket;
    this.#pool = pool;
  }

  /** Points the writer at a new transport (the TLS socket after STARTTLS). Anything queued is written first. */
  retarget(socket: Duplex): void {
    this.flush();
    this.#socket = socket;
  }

  /** Queues one whole reply; a large `reply` is written by reference, so the caller must not change it afterwards. */
  send(reply: Buffer): void {
    if (this.#closed) return;
    if (reply.byteLength <= COPY_LIMIT_BYTES) reply.copy(this.reserve(reply.byteLength));
    else this.#enqueue(reply, null);
  }

  /** Queues `reply`, a view of `pooled` (a buffer of the pool), and gives `pooled` back once it is written. */
  sendPooled(reply: Buffer, pooled: Buffer): void {
    if (this.#closed) {
      this.#pool.release(pooled);
    } else if (reply.byteLength <= COPY_LIMIT_BYTES) {
      reply.copy(this.reserve(reply.byteLength));
      this.#pool.release(pooled);
    } else {
      this.#enqueue(reply, pooled);
    }
  }

  /**
   * Space for one reply of `bytes` (at most 64 KiB) at the end of the queue, for the caller to fill at once, before
   * it returns to the event loop: the space is written out in a microtask.
   */
  reserve(bytes: number): Buffer {
    if (bytes > COPY_LIMIT_BYTES) throw new RangeError(`Cannot reserve ${bytes} bytes: replies over ${COPY_LIMIT_BYTES} bytes are queued by reference.`);
    // A closed writer sends nothing; the caller still gets somewhere to write.
    if (this.#closed) return Buffer.allocUnsafe(bytes);
    if (this.#batch === null || this.#batchEnd + bytes > this.#batch.byteLength) this.#startBatch();
    const start = this.#batchEnd;
    this.#batchEnd += bytes;
    this.#schedule();
    return this.#batch!.subarray(start, this.#batchEnd);
  }

  /** Bytes accepted by the socket but not yet handed to the kernel: a slow reader shows up here. */
  get backlogBytes(): number {
    return this.#socket.writableLength;
  }

  /** Writes everything queued now. */
  flush(): void {
    this.#retireBatch();
    const queue = this.#queue;
    if (queue.length === 0) return;
    const releases = this.#releases;
    this.#queue = [];
    this.#releases = [];
    const socket = this.#socket;
    if (this.#closed || socket.destroyed || socket.writableEnded) {
      for (const pooled of releases) if (pooled !== null) this.#pool.release(pooled);
      return;
    }
    if (queue.length > 1) socket.cork();
    for (let i = 0; i < queue.length; i++) {
      const pooled = releases[i]!;
      if (pooled === null) {
        socket.write(queue[i]!);
      } else {
        this.#inSocket.push(pooled);
        socket.write(queue[i]!, this.#onWritten);
      }
    }
    if (queue.length > 1) socket.uncork();
  }

  /** Drops whatever is queued and refuses further replies. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#releases = [];
    this.#batch = null;
  }

  #enqueue(buffer: Buffer, pooled: Buffer | null): void {
    this.#queueBatchPart(null);
    this.#queue.push(buffer);
    this.#releases.push(pooled);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flushSoon);
  }

  #startBatch(): void {
    this.#retireBatch();
    this.#batch = this.#pool.acquire(BATCH_BYTES);
    this.#batchStart = 0;
    this.#batchEnd = 0;
  }

  /** Queues the filled, unqueued part of the batch; `release` rides on it (the batch itself when it is done). */
  #queueBatchPart(release: Buffer | null): boolean {
    if (this.#batch === null || this.#batchEnd === this.#batchStart) return false;
    this.#queue.push(this.#batch.subarray(this.#batchStart, this.#batchEnd));
    this.#releases.push(release);
    this.#batchStart = this.#batchEnd;
    return true;
  }

  /** Queues the rest of the batch and lets it go: the pool gets it back once the socket has written it. */
  #retireBatch(): void {
    const batch = this.#batch;
    if (batch === null) return;
    const queued = this.#queueBatchPart(batch);
    this.#batch = null;
    if (queued) return;
    // Everything in it was queued earlier (before a large reply); release it with the last part that holds it.
    const last = this.#queue.findLastIndex((buffer) => buffer.buffer === batch.buffer);
    if (last >= 0) this.#releases[last] = batch;
    else this.#pool.release(batch);
  }
}
