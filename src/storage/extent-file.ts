// The data file that holds extents: extent N lives at byte N × chunkSize. Slot 0 is never used (0 means "unmapped").
import fs from "node:fs";

/** One contiguous piece of file I/O: `buffer` at byte `position` of the data file. */
export interface FileIo {
  position: number;
  buffer: Uint8Array;
}

/** Synchronous positional I/O on the extents file; batches contiguous pieces into one vectored call. */
export class ExtentFile {
  #fd: number;
  readonly chunkSizeBytes: number;

  constructor(filePath: string, chunkSizeBytes: number) {
    this.#fd = fs.openSync(filePath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.chunkSizeBytes = chunkSizeBytes;
  }

  /** Byte position of `offsetInChunk` inside extent `extentId`. */
  position(extentId: number, offsetInChunk = 0): number {
    return extentId * this.chunkSizeBytes + offsetInChunk;
  }

  /** Writes every piece; pieces that follow each other in the file go out in one writev. */
  writeAll(pieces: FileIo[]): void {
    forEachRun(pieces, (position, buffers) => {
      const total = totalBytes(buffers);
      const written = fs.writevSync(this.#fd, buffers, position);
      if (written < total) this.#slowPath(buffers, position, written, "write");
    });
  }

  /** Fills every piece from the file; bytes past the end of the file (never written) read as zeroes. */
  readAll(pieces: FileIo[]): void {
    forEachRun(pieces, (position, buffers) => {
      const total = totalBytes(buffers);
      const got = fs.readvSync(this.#fd, buffers, position);
      if (got < total) this.#slowPath(buffers, position, got, "read");
    });
  }

  /** Finishes a short vectored call one buffer at a time; a read that meets end of file zero-fills the rest. */
  #slowPath(buffers: Uint8Array[], position: number, done: number, kind: "read" | "write"): void {
    let offset = 0;
    for (const buffer of buffers) {
      let at = Math.max(0, done - offset);
      while (at < buffer.byteLength) {
        const n =
          kind === "read"
            ? fs.readSync(this.#fd, buffer, at, buffer.byteLength - at, position + offset + at)
            : fs.writeSync(this.#fd, buffer, at, buffer.byteLength - at, position + offset + at);
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

  /** Reads one whole extent. */
  readChunk(extentId: number): Buffer {
    const buffer = Buffer.alloc(this.chunkSizeBytes);
    this.readAll([{ position: this.position(extentId), buffer }]);
    return buffer;
  }

  /** Makes every write so far durable. */
  sync(): void {
    fs.fdatasyncSync(this.#fd);
  }

  /** Drops everything past extent `lastExtentId`: after a crash those slots hold only uncommitted data. */
  truncateAfter(lastExtentId: number): void {
    const keep = (lastExtentId + 1) * this.chunkSizeBytes;
    if (fs.fstatSync(this.#fd).size > keep) {
      fs.ftruncateSync(this.#fd, keep);
      fs.fsyncSync(this.#fd);
    }
  }

  /** Closes the file; later calls fail with EBADF instead of reaching whatever file reuses the descriptor. */
  close(): void {
    const fd = this.#fd;
    this.#fd = -1;
    fs.closeSync(fd);
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
