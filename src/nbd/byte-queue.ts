// Input buffer of one connection: received chunks kept as they came, read without copying where a message fits in one.

const EMPTY = Buffer.alloc(0);

/**
 * A FIFO of received bytes. Socket chunks are kept as a list and consumed from the front, so a message that lies
 * inside one chunk is returned as a view (no copy), and one that straddles chunks is copied exactly once.
 * Nothing is ever re-concatenated as more data arrives, so parsing stays linear in the bytes received.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  /** Index of the first live chunk in #chunks (shifting arrays is O(n), so dead entries are dropped in batches). */
  #first = 0;
  /** Bytes of #chunks[#first] already consumed. */
  #offset = 0;
  #length = 0;

  /** Bytes waiting to be read. */
  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.byteLength;
  }

  /** The next `n` bytes without consuming them: a view when they sit in one chunk, else a copy. */
  peek(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`Cannot peek ${n} bytes: only ${this.#length} are queued.`);
    if (n === 0) return EMPTY;
    const head = this.#chunks[this.#first]!;
    if (head.byteLength - this.#offset >= n) return head.subarray(this.#offset, this.#offset + n);
    return this.#copy(n, false);
  }

  /**
   * Consumes and returns the next `n` bytes: a view when they sit in one chunk, else one copy, made into
   * `destination(n)` when given (a reusable buffer of at least `n` bytes) so big payloads need no fresh allocation.
   */
  take(n: number, destination?: (n: number) => Buffer): Buffer {
    if (n > this.#length) throw new RangeError(`Cannot take ${n} bytes: only ${this.#length} are queued.`);
    if (n === 0) return EMPTY;
    const head = this.#chunks[this.#first]!;
    if (head.byteLength - this.#offset >= n) {
      const view = head.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      return view;
    }
    return this.#copy(n, true, destination);
  }

  /** Consumes the next `n` bytes into `destination` at `at`. */
  takeInto(destination: Uint8Array, at: number, n: number): void {
    if (n > this.#length) throw new RangeError(`Cannot take ${n} bytes: only ${this.#length} are queued.`);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[this.#first]!;
      const count = Math.min(head.byteLength - this.#offset, n - filled);
      head.copy(destination, at + filled, this.#offset, this.#offset + count);
      filled += count;
      this.#advance(count);
    }
  }

  /** Drops the next `n` bytes (at most what is queued); returns how many were dropped. */
  skip(n: number): number {
    const dropped = Math.min(n, this.#length);
    this.#advance(dropped);
    return dropped;
  }

  /**
   * Copies whatever is still queued into memory the queue owns. Call it before the memory of pushed chunks is
   * reused (a socket that reads into one buffer over and over); what remains is normally a partial message.
   */
  own(): void {
    if (this.#length === 0) return;
    const rest = this.#copy(this.#length, true);
    this.#chunks = [rest];
    this.#first = 0;
    this.#offset = 0;
    this.#length = rest.byteLength;
  }

  /** Forgets everything queued. */
  clear(): void {
    this.#chunks = [];
    this.#first = 0;
    this.#offset = 0;
    this.#length = 0;
  }

  #copy(n: number, consume: boolean, destination?: (n: number) => Buffer): Buffer {
    const out = destination ? destination(n).subarray(0, n) : Buffer.allocUnsafe(n);
    let filled = 0;
    let index = this.#first;
    let offset = this.#offset;
    while (filled < n) {
      const chunk = this.#chunks[index]!;
      const count = Math.min(chunk.byteLength - offset, n - filled);
      chunk.copy(out, filled, offset, offset + count);
      filled += count;
      index++;
      offset = 0;
    }
    if (consume) this.#advance(n);
    return out;
  }

  #advance(n: number): void {
    this.#length -= n;
    let remaining = n;
    while (remaining > 0) {
      const head = this.#chunks[this.#first]!;
      const left = head.byteLength - this.#offset;
      if (remaining < left) {
        this.#offset += remaining;
        return;
      }
      remaining -= left;
      this.#chunks[this.#first] = EMPTY;
      this.#first++;
      this.#offset = 0;
    }
    if (this.#first === this.#chunks.length) {
      this.#chunks = [];
      this.#first = 0;
    } else if (this.#first >= 64) {
      this.#chunks = this.#chunks.slice(this.#first);
      this.#first = 0;
    }
  }
}
