// Reusable reply buffers shared by a server's connections, so the data path allocates no memory per request.

/** Smallest size class: every buffer holds at least this many bytes. */
const MIN_CLASS_BYTES = 4 * 1024;
/**
 * Every class has this much room beyond its power of two, for a reply header in front of read data: a 256 KiB read
 * and its 28-byte header then fit a 256 KiB class rather than taking a 512 KiB one.
 */
const HEADER_ROOM_BYTES = 64;

/**
 * Free lists of buffers in power-of-two size classes (plus room for a header). Every ArrayBuffer Node allocates counts towards V8's heap
 * limits, so allocating one per request (1 GiB of 256 KiB reads, or 100k 4 KiB reads a second) makes V8 run a full
 * mark-compact every few dozen megabytes; reusing them removes that. At most `maxIdleBytes` wait in the pool;
 * beyond that a released buffer is left to the garbage collector, so a burst of huge requests cannot pin memory.
 */
export class BufferPool {
  readonly #maxIdleBytes: number;
  readonly #free = new Map<number, Buffer[]>();
  #idleBytes = 0;

  /** `maxIdleBytes`: most bytes kept for reuse (default 64 MiB). */
  constructor(maxIdleBytes = 64 * 1024 * 1024) {
    this.#maxIdleBytes = maxIdleBytes;
  }

  /** Bytes waiting for reuse. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /** A buffer of at least `minBytes` bytes (its contents are not zeroed); give it back with `release`. */
  acquire(minBytes: number): Buffer {
    const size = sizeClass(minBytes);
    const buffer = this.#free.get(size)?.pop();
    if (buffer === undefined) return Buffer.allocUnsafeSlow(size);
    this.#idleBytes -= size;
    return buffer;
  }

  /** Returns a buffer from `acquire`; the caller must not touch it afterwards. */
  release(buffer: Buffer): void {
    const size = buffer.byteLength;
    if (size !== sizeClass(size) || this.#idleBytes + size > this.#maxIdleBytes) return;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, (list = []));
    list.push(buffer);
    this.#idleBytes += size;
  }
}

/** The size of the class that holds `bytes`: a power of two, at least MIN_CLASS_BYTES, plus HEADER_ROOM_BYTES. */
function sizeClass(bytes: number): number {
  const data = bytes - HEADER_ROOM_BYTES;
  if (data <= MIN_CLASS_BYTES) return MIN_CLASS_BYTES + HEADER_ROOM_BYTES;
  return 2 ** Math.ceil(Math.log2(data)) + HEADER_ROOM_BYTES;
}
