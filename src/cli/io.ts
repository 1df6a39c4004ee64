// Streaming volume data in and out in bounded pieces, so `volume write`/`read` never hold a whole volume in memory.
import { once } from "node:events";
import type { Writable } from "node:stream";
import { OutOfRangeError } from "../storage/errors.ts";

/** Size of each engine read or write the CLI issues: 1 MiB. */
export const IO_CHUNK_BYTES = 1024 * 1024;

/** The part of a SanClient that streaming writes need (may answer synchronously or with a promise). */
export interface VolumeWriter {
  write(volumeId: string, offset: number, data: Uint8Array): void | Promise<void>;
  flush(): void | Promise<void>;
}

/** The part of a SanClient that streaming reads need. */
export interface ImageReader {
  read(imageId: string, offset: number, length: number): Buffer | Promise<Buffer>;
}

/**
 * Writes everything `source` yields to the volume starting at `offset`, in writes of `chunkBytes` (the last may be
 * shorter), then flushes so the data is durable. Returns the number of bytes written.
 */
export async function writeFromStream(
  san: VolumeWriter,
  volumeId: string,
  offset: number,
  source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
  chunkBytes = IO_CHUNK_BYTES,
): Promise<number> {
  const pending = Buffer.alloc(chunkBytes);
  let filled = 0;
  let written = 0;
  const writePending = async () => {
    await san.write(volumeId, offset + written, pending.subarray(0, filled));
    written += filled;
    filled = 0;
  };
  for await (const piece of source) {
    const bytes = typeof piece === "string" ? Buffer.from(piece) : piece;
    let position = 0;
    while (position < bytes.length) {
      const take = Math.min(chunkBytes - filled, bytes.length - position);
      pending.set(bytes.subarray(position, position + take), filled);
      filled += take;
      position += take;
      if (filled === chunkBytes) await writePending();
    }
  }
  if (filled > 0) await writePending();
  await san.flush();
  return written;
}

/** Where read data goes: a function that may return a promise to apply backpressure. */
export type ChunkSink = (chunk: Buffer) => void | Promise<void>;

/** Reads `length` bytes of an image from `offset` in pieces of `chunkBytes`, handing each to `sink` in order. */
export async function readToSink(
  san: ImageReader,
  imageId: string,
  offset: number,
  length: number,
  sink: ChunkSink,
  chunkBytes = IO_CHUNK_BYTES,
): Promise<void> {
  for (let done = 0; done < length; ) {
    const take = Math.min(chunkBytes, length - done);
    await sink(await san.read(imageId, offset + done, take));
    done += take;
  }
}

/** Resolves what `read` should cover: from `offset` (default 0) for `length` bytes (default: to the end of the image). */
export function readRange(imageId: string, imageSizeBytes: number, offset?: number, length?: number): { offset: number; length: number } {
  const start = offset ?? 0;
  if (start > imageSizeBytes) {
    throw new OutOfRangeError(`Cannot read ${imageId} from offset ${start}: the image is only ${imageSizeBytes} bytes.`);
  }
  return { offset: start, length: length ?? imageSizeBytes - start };
}

/** The reader of stdout went away (e.g. `esan volume read ... | head`); the CLI stops quietly, like a tool killed by SIGPIPE. */
export class OutputClosedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super("The output stream was closed before all data was written.", options);
    this.name = "OutputClosedError";
  }
}

/** A sink for a Node writable stream (stdout) that waits for 'drain' when the stream's buffer is full. */
export function streamSink(stream: Writable): ChunkSink {
  return async (chunk) => {
    if (stream.destroyed) throw new OutputClosedError();
    if (stream.write(chunk)) return;
    try {
      await once(stream, "drain");
    } catch (err) {
      throw new OutputClosedError({ cause: err });
    }
  };
}
