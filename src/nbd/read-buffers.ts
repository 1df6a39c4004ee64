// Socket reads into reused buffers: a plain connection receives its requests without allocating per read.
import net from "node:net";
import type { BufferPool } from "./buffer-pool.ts";

/** Size of one read buffer: a read takes whatever the kernel holds, up to this much. */
const READ_BUFFER_BYTES = 256 * 1024;

/** One read buffer and the views of it that asynchronous requests still hold. */
interface ReadBuffer {
  buffer: Buffer;
  holds: number;
  /** Replaced as the read target; goes back to the pool when its last hold is released. */
  retired: boolean;
}

/**
 * The read side of a plain socket. Node's default allocates a fresh 64 KiB buffer for every read, and V8 counts
 * those towards its heap limits, so 1 GiB of writes triggered some 30 full mark-compact collections. Here reads
 * land in a pool buffer that is reused from one read to the next. `onChunk` gets a view that is valid only until it
 * returns: whatever the caller keeps longer it either copies or `hold`s.
 */
export class ReadBuffers {
  readonly #pool: BufferPool;
  readonly #onChunk: (chunk: Buffer) => void;
  #current: ReadBuffer | null = null;

  constructor(pool: BufferPool, onChunk: (chunk: Buffer) => void) {
    this.#pool = pool;
    this.#onChunk = onChunk;
  }

  /** Node's `onread` option: where the next read goes, and what to do with it. */
  get onread(): net.OnReadOpts {
    return {
      buffer: () => this.#nextTarget(),
      callback: (bytes, buffer) => {
        this.#onChunk((buffer as Buffer).subarray(0, bytes));
        return true;
      },
    };
  }

  /**
   * Keeps the read buffer under `view` from reuse until the returned function is called (an asynchronous write
   * still reading its payload). Views of other memory need no hold; their release does nothing.
   */
  hold(view: Uint8Array): () => void {
    const current = this.#current;
    if (current === null || view.buffer !== current.buffer.buffer) return noop;
    current.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--current.holds === 0 && current.retired) this.#pool.release(current.buffer);
    };
  }

  /** Stops reusing buffers (the socket is gone); held ones are left to the garbage collector. */
  close(): void {
    this.#current = null;
  }

  /** Called by Node before each read: the same buffer again unless a request still holds part of it. */
  #nextTarget(): Buffer {
    const current = this.#current;
    if (current !== null && current.holds === 0) return current.buffer;
    if (current !== null) current.retired = true;
    this.#current = { buffer: this.#pool.acquire(READ_BUFFER_BYTES), holds: 0, retired: false };
    return this.#current.buffer;
  }
}

function noop(): void {}

/**
 * The accepted socket `accepted`, re-created over the same OS handle so that its reads go through `reads`. Node
 * offers `onread` only when it creates a socket, never for one a server accepts, so this moves the handle (a
 * private field) into a new socket before any byte was read. Returns `accepted` unchanged where that handle is not
 * there (an unexpected Node version); reads then take Node's default path, which is slower but works the same.
 */
export function adoptWithReusedBuffers(accepted: net.Socket, reads: ReadBuffers): net.Socket {
  const shell = accepted as unknown as { _handle?: { useUserBuffer?: unknown } | null };
  const handle = shell._handle;
  if (!handle || typeof handle.useUserBuffer !== "function") return accepted;
  shell._handle = null;
  // The shell no longer owns the handle: destroying it only settles the listener's connection count.
  accepted.destroy();
  return new net.Socket({ handle: handle as net.BoundSocket, readable: true, writable: true, onread: reads.onread });
}
