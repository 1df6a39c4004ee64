// The data file that holds extents: extent N lives at byte N × chunkSize. Slot 0 is never used (0 means "unmapped").
import fs from "node:fs";

/**
 * The file grows ahead of writes in steps of this size. Writes that extend a file one request at a time cost ext4 a
 * size update each: 1 GiB of 256 KiB writes took 830 ms extending the file, 350 ms into space grown 64 MiB at a time
 * and 145 ms overwriting (this machine, page cache, before fdatasync).
 */
const GROWTH_BYTES = 64 * 1024 * 1024;

/**
 * Write requests of at least this size count as streaming writes, wherever their chunks land in the file. A
 * sequential writer sends requests of 128 KiB and more; 4 KiB random writes and 64 KiB copy-on-write chunks stay
 * below it, so their dirty pages are left to the kernel.
 */
const STREAM_REQUEST_BYTES = 128 * 1024;

/**
 * After this many bytes of streaming writes, an fdatasync starts on libuv's thread pool. The page cache here holds
 * gigabytes of dirty data before the kernel starts writing back, so without it a 1 GiB copy ends with one
 * fdatasync that writes all of it; started early, the disk works while the client is still sending.
 */
const WRITEBACK_KICK_BYTES = 32 * 1024 * 1024;

/** One contiguous piece of file I/O: `buffer` at byte `position` of the data file. */
export interface FileIo {
  position: number;
  buffer: Uint8Array;
}

/**
 * Positional I/O on the extents file; batches contiguous pieces into one vectored call. Everything is synchronous
 * except `readAllAsync`, which runs on libuv's thread pool.
 */
export class ExtentFile {
  #fd: number;
  readonly chunkSizeBytes: number;
  /** Asynchronous reads and background syncs not finished yet: they hold the descriptor open past `close`. */
  #asyncInFlight = 0;
  /** The descriptors `close` was asked to close while asynchronous calls were still in flight. */
  #closeWhenIdle: number[] = [];
  /**
   * A second descriptor of the file, used only by background syncs. Linux reports a writeback error once to every
   * open file description, so a background sync that meets an error cannot hide it from the commit's `sync` on #fd,
   * even when the two run at the same time.
   */
  #backgroundSyncFd: number;
  /** Streaming bytes written since the last background writeback started. */
  #streamedBytes = 0;
  #backgroundSyncRunning = false;
  /** The failure of a background fdatasync; `sync` throws it as well, so no later commit trusts the lost data. */
  #backgroundSyncError: Error | null = null;
  /** Bytes the file spans, holes included. */
  #sizeBytes: number;

  constructor(filePath: string, chunkSizeBytes: number) {
    this.#fd = fs.openSync(filePath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.#backgroundSyncFd = fs.openSync(filePath, fs.constants.O_RDONLY);
    this.chunkSizeBytes = chunkSizeBytes;
    this.#sizeBytes = fs.fstatSync(this.#fd).size;
  }

  /** Byte position of `offsetInChunk` inside extent `extentId`. */
  position(extentId: number, offsetInChunk = 0): number {
    return extentId * this.chunkSizeBytes + offsetInChunk;
  }

  /** Writes every piece; pieces that follow each other in the file go out in one writev. */
  writeAll(pieces: FileIo[]): void {
    this.#growFor(pieces);
    let requestBytes = 0;
    forEachRun(pieces, (position, buffers) => {
      const total = totalBytes(buffers);
      const written = fs.writevSync(this.#fd, buffers, position);
      if (written < total) this.#slowPath(buffers, position, written, "write");
      requestBytes += total;
    });
    if (requestBytes >= STREAM_REQUEST_BYTES) this.#streamedBytes += requestBytes;
    if (this.#streamedBytes >= WRITEBACK_KICK_BYTES && !this.#backgroundSyncRunning) this.#startBackgroundSync();
  }

  /**
   * Starts writing back what streaming writes left dirty, on the thread pool. It only moves disk work earlier:
   * durability still comes from `sync`, which the commit calls, and which reports this call's failure.
   */
  #startBackgroundSync(): void {
    this.#streamedBytes = 0;
    this.#backgroundSyncRunning = true;
    this.#asyncInFlight++;
    fs.fdatasync(this.#backgroundSyncFd, (err) => {
      this.#backgroundSyncRunning = false;
      if (err) this.#backgroundSyncError ??= err;
      this.#asyncDone();
    });
  }

  /**
   * Extends the file, in GROWTH_BYTES steps, to hold every piece. The grown tail is a hole, so its never-written
   * extents read as zeroes, as fresh extents must; opening truncates whatever lies past the committed extents.
   */
  #growFor(pieces: FileIo[]): void {
    let end = 0;
    for (const piece of pieces) end = Math.max(end, piece.position + piece.buffer.byteLength);
    if (end <= this.#sizeBytes) return;
    const size = Math.ceil(end / GROWTH_BYTES) * GROWTH_BYTES;
    fs.ftruncateSync(this.#fd, size);
    this.#sizeBytes = size;
  }

  /** Fills every piece from the file; bytes past the end of the file (never written) read as zeroes. */
  readAll(pieces: FileIo[]): void {
    forEachRun(pieces, (position, buffers) => {
      const total = totalBytes(buffers);
      const got = fs.readvSync(this.#fd, buffers, position);
      if (got < total) this.#slowPath(buffers, position, got, "read");
    });
  }

  /**
   * `readAll` on libuv's thread pool, so that copying large reads out of the page cache overlaps with the main
   * thread's socket work. Resolves when every piece is filled.
   */
  readAllAsync(pieces: FileIo[]): Promise<void> {
    const runs: Promise<void>[] = [];
    forEachRun(pieces, (position, buffers) => runs.push(this.#readRunAsync(position, buffers)));
    return runs.length === 1 ? runs[0]! : Promise.all(runs).then(() => undefined);
  }

  #readRunAsync(position: number, buffers: Uint8Array[]): Promise<void> {
    const fd = this.#fd;
    this.#asyncInFlight++;
    return new Promise<void>((resolve, reject) => {
      const done = (err: Error | null, got: number): void => {
        try {
          if (err) throw err;
          // Short only at end of file (never-written extents), which is rare: finish it synchronously.
          if (got < totalBytes(buffers)) this.#slowPath(buffers, position, got, "read", fd);
          resolve();
        } catch (failure) {
          reject(failure instanceof Error ? failure : new Error(String(failure)));
        } finally {
          this.#asyncDone();
        }
      };
      try {
        fs.readv(fd, buffers, position, done);
      } catch (err) {
        done(err as Error, 0);
      }
    });
  }

  #asyncDone(): void {
    if (--this.#asyncInFlight === 0) {
      for (const fd of this.#closeWhenIdle) fs.closeSync(fd);
      this.#closeWhenIdle = [];
    }
  }

  /** Finishes a short vectored call one buffer at a time; a read that meets end of file zero-fills the rest. */
  #slowPath(buffers: Uint8Array[], position: number, done: number, kind: "read" | "write", fd = this.#fd): void {
    let offset = 0;
    for (const buffer of buffers) {
      let at = Math.max(0, done - offset);
      while (at < buffer.byteLength) {
        const n =
          kind === "read"
            ? fs.readSync(fd, buffer, at, buffer.byteLength - at, position + offset + at)
            : fs.writeSync(fd, buffer, at, buffer.byteLength - at, position + offset + at);
        if (n === 0) {
          if (kind === "write") throw new Error(`The extents file accepted no bytes at position ${position + offset + at}.`);
          buffer.fill(0, at);
          break;
        }
        at += n;
      }
      offset += buffer.byteLength;
    }
  }

  /** Makes every write so far durable; throws if this or an earlier background sync failed. */
  sync(): void {
    if (this.#backgroundSyncError) {
      throw new Error("A background fdatasync of the extents file failed; written data may be lost.", { cause: this.#backgroundSyncError });
    }
    fs.fdatasyncSync(this.#fd);
  }

  /** Drops everything past extent `lastExtentId`: after a crash those slots hold only uncommitted data. */
  truncateAfter(lastExtentId: number): void {
    const keep = (lastExtentId + 1) * this.chunkSizeBytes;
    if (this.#sizeBytes > keep) {
      fs.ftruncateSync(this.#fd, keep);
      fs.fsyncSync(this.#fd);
      this.#sizeBytes = keep;
    }
  }

  /**
   * Closes the file; later calls fail with EBADF instead of reaching whatever file reuses the descriptor. Reads and
   * syncs in flight keep the descriptor open until they finish, so none of them can reach a file that reused its number.
   */
  close(): void {
    const fds = [this.#fd, this.#backgroundSyncFd].filter((fd) => fd >= 0);
    this.#fd = -1;
    this.#backgroundSyncFd = -1;
    if (this.#asyncInFlight > 0) this.#closeWhenIdle.push(...fds);
    else for (const fd of fds) fs.closeSync(fd);
  }
}

function forEachRun(pieces: FileIo[], io: (position: number, buffers: Uint8Array[]) => void): void {
  let i = 0;
  while (i < pieces.length) {
    const first = pieces[i]!;
    const buffers = [first.buffer];
    let end = first.position + first.buffer.byteLength;
    let j = i + 1;
    while (j < pieces.length && pieces[j]!.position === end && buffers.length < 1024) {
      buffers.push(pieces[j]!.buffer);
      end += pieces[j]!.buffer.byteLength;
      j++;
    }
    io(first.position, buffers);
    i = j;
  }
}

function totalBytes(buffers: Uint8Array[]): number {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  return total;
}
