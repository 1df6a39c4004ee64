// The data-plane commands shared by volumes and snapshots: write from a file or stdin, read to a file or stdout.
import { createReadStream, closeSync, openSync, writeSync } from "node:fs";
import { InvalidArgumentError } from "../storage/errors.ts";
import type { CommandContext } from "./context.ts";
import { readRange, readToSink, streamSink, writeFromStream, type ChunkSink } from "./io.ts";
import { formatSize, parseSize } from "./units.ts";

/** Raw options of `volume write`. */
export interface WriteFlags {
  offset?: string;
  file?: string;
}

/** Raw options of `volume read` / `snapshot read`. */
export interface ReadFlags {
  offset?: string;
  length?: string;
  file?: string;
}

/** `volume write`: streams the file (or stdin) into the volume at --offset in 1 MiB writes, then flushes. */
export async function runWrite(context: CommandContext, volumeId: string, flags: WriteFlags): Promise<void> {
  const offset = flags.offset === undefined ? 0 : parseSize(flags.offset, "--offset");
  if (flags.file === undefined && process.stdin.isTTY) {
    throw new InvalidArgumentError(`Cannot write to ${volumeId}: the data comes from stdin, which is a terminal; pipe the data in or pass --file FILE.`);
  }
  const source = flags.file === undefined ? process.stdin : createReadStream("", { fd: openFile(flags.file, "r") });
  const bytesWritten = await writeFromStream(context.client, volumeId, offset, source);
  const summary = { id: volumeId, offset, bytesWritten };
  context.print(summary, () => `wrote ${bytesWritten} bytes (${formatSize(bytesWritten)}) to ${volumeId} at offset ${offset}`);
}

/** `volume read` / `snapshot read`: streams [--offset, --offset+--length) of the image to the file or stdout in 1 MiB reads. */
export async function runRead(context: CommandContext, imageId: string, imageSizeBytes: number, flags: ReadFlags): Promise<void> {
  const { offset, length } = readRange(
    imageId,
    imageSizeBytes,
    flags.offset === undefined ? undefined : parseSize(flags.offset, "--offset"),
    flags.length === undefined ? undefined : parseSize(flags.length, "--length"),
  );
  if (flags.file === undefined) {
    // The data itself is the output; --json has no summary to add on stdout.
    await readToSink(context.client, imageId, offset, length, streamSink(process.stdout));
    return;
  }
  const fd = openFile(flags.file, "w");
  try {
    await readToSink(context.client, imageId, offset, length, fileSink(fd));
  } finally {
    closeSync(fd);
  }
  const summary = { id: imageId, offset, bytesRead: length, file: flags.file };
  context.print(summary, () => `read ${length} bytes (${formatSize(length)}) of ${imageId} from offset ${offset} into ${flags.file}`);
}

/** Opens --file for reading ("r") or writing ("w"), turning a file system refusal into a sentence about the option. */
function openFile(path: string, flags: "r" | "w"): number {
  try {
    return openSync(path, flags);
  } catch (err) {
    // Node says "ENOENT: no such file or directory, open '/x'"; keep only the reason in the middle.
    const message = err instanceof Error ? err.message : String(err);
    const reason = /^[A-Z]+: (.+?), open /.exec(message)?.[1] ?? message;
    throw new InvalidArgumentError(`Cannot open --file ${path} for ${flags === "r" ? "reading" : "writing"}: ${reason}.`, { cause: err });
  }
}

/** A sink that appends each chunk to an open file, retrying short writes. */
function fileSink(fd: number): ChunkSink {
  return (chunk) => {
    for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done);
  };
}
