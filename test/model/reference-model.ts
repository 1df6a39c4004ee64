// A flat reference model of the SAN's data plane: every image is a plain byte array plus per-chunk generations.
//
// The engine shares chunks between images through copy-on-write maps; the model shares nothing and copies
// whole arrays. Two images that hold the same generation number for a chunk got that chunk by snapshot or
// clone from a common ancestor and neither touched it since, so the engine must consider them equal there.
// Generation 0 means "never written in this image's lineage" (the chunk reads as zeroes and is unmapped).

/** What kind of image an entry of the model is. */
export type ModelImageKind = "volume" | "snapshot";

/** The refusal codes the model predicts; a subset of the engine's EsanErrorCode. */
export type ModelRefusalCode = "NotFound" | "OutOfRange" | "ReadOnly" | "FailedPrecondition" | "AlreadyExists" | "CapacityExceeded";

/** One image of the model: its kind, full content sized to the image, and a generation per chunk. */
export interface ModelImage {
  kind: ModelImageKind;
  bytes: Uint8Array;
  gens: number[];
}

/** Thrown by the model, before it changes anything, for an operation the engine must refuse. */
export class ModelRefusal extends Error {
  readonly code: ModelRefusalCode;

  constructor(code: ModelRefusalCode, message: string) {
    super(message);
    this.code = code;
    this.name = "ModelRefusal";
  }
}

/** The flat model: a map of image id to its bytes and chunk generations. */
export class ReferenceModel {
  readonly chunkSizeBytes: number;
  /** The Elastic SAN provisioning rule: volume sizes together may not exceed this (default: unlimited). */
  readonly capacityBytes: number;
  readonly images = new Map<string, ModelImage>();
  private lastGen = 0;

  constructor(chunkSizeBytes: number, capacityBytes = Number.POSITIVE_INFINITY) {
    this.chunkSizeBytes = chunkSizeBytes;
    this.capacityBytes = capacityBytes;
  }

  /** Sum of the sizes of all live volumes. */
  provisionedBytes(): number {
    return this.ids("volume").reduce((sum, id) => sum + this.get(id).bytes.length, 0);
  }

  /** Number of chunks an image of `sizeBytes` spans (the last one may be partial). */
  chunkCount(sizeBytes: number): number {
    return Math.ceil(sizeBytes / this.chunkSizeBytes);
  }

  /** The image with `id`; NotFound when there is none. */
  get(id: string): ModelImage {
    const image = this.images.get(id);
    if (image === undefined) throw new ModelRefusal("NotFound", `model has no image ${id}`);
    return image;
  }

  /** Ids of the live images of one kind, in creation order. */
  ids(kind: ModelImageKind): string[] {
    return [...this.images].filter(([, image]) => image.kind === kind).map(([id]) => id);
  }

  /** Adds an empty volume: all zeroes, every chunk generation 0. */
  createVolume(id: string, sizeBytes: number): void {
    this.requireFree(id);
    this.requireProvisioning(id, sizeBytes);
    this.images.set(id, { kind: "volume", bytes: new Uint8Array(sizeBytes), gens: new Array<number>(this.chunkCount(sizeBytes)).fill(0) });
  }

  /** Writes `data` at `offset` of a volume. */
  write(id: string, offset: number, data: Uint8Array): void {
    const image = this.writable(id, offset, data.length);
    image.bytes.set(data, offset);
    this.touch(image, offset, data.length);
  }

  /** Zeroes a range of a volume (writeZeroes, with or without noHole: the content is the same). */
  zero(id: string, offset: number, length: number): void {
    const image = this.writable(id, offset, length);
    image.bytes.fill(0, offset, offset + length);
    this.touch(image, offset, length);
  }

  /** Trims a range of a volume; trimmed bytes read back as zeroes. */
  trim(id: string, offset: number, length: number): void {
    this.zero(id, offset, length);
  }

  /** Reads `length` bytes at `offset` of any image; OutOfRange outside it. */
  read(id: string, offset: number, length: number): Uint8Array {
    const image = this.get(id);
    checkRange(id, image.bytes.length, offset, length);
    return image.bytes.slice(offset, offset + length);
  }

  /** Takes a snapshot `snapshotId` of volume `volumeId`: a copy of its bytes and generations. */
  snapshot(snapshotId: string, volumeId: string): void {
    const source = this.get(volumeId);
    if (source.kind !== "volume") throw new ModelRefusal("NotFound", `${volumeId} is not a volume`);
    this.requireFree(snapshotId);
    this.images.set(snapshotId, { kind: "snapshot", bytes: source.bytes.slice(), gens: source.gens.slice() });
  }

  /** Creates volume `id` from any image, zero-extended to `sizeBytes`; new chunks get generation 0. */
  clone(id: string, sourceId: string, sizeBytes: number): void {
    const source = this.get(sourceId);
    if (sizeBytes < source.bytes.length) {
      throw new ModelRefusal("FailedPrecondition", `clone of ${sourceId} to ${sizeBytes} bytes is smaller than ${source.bytes.length}`);
    }
    this.requireFree(id);
    this.requireProvisioning(id, sizeBytes);
    const bytes = new Uint8Array(sizeBytes);
    bytes.set(source.bytes);
    const gens = new Array<number>(this.chunkCount(sizeBytes)).fill(0);
    source.gens.forEach((gen, chunk) => (gens[chunk] = gen));
    this.images.set(id, { kind: "volume", bytes, gens });
  }

  /** Grows volume `id` to `sizeBytes` with zeroes; shrinking is FailedPrecondition. */
  resize(id: string, sizeBytes: number): void {
    const image = this.get(id);
    if (image.kind !== "volume") throw new ModelRefusal("NotFound", `${id} is not a volume`);
    if (sizeBytes < image.bytes.length) {
      throw new ModelRefusal("FailedPrecondition", `${id} cannot shrink from ${image.bytes.length} to ${sizeBytes}`);
    }
    this.requireProvisioning(id, sizeBytes - image.bytes.length);
    const bytes = new Uint8Array(sizeBytes);
    bytes.set(image.bytes);
    image.bytes = bytes;
    while (image.gens.length < this.chunkCount(sizeBytes)) image.gens.push(0);
  }

  /** Removes an image; a deleted volume's snapshots are independent copies and survive. */
  delete(id: string, kind: ModelImageKind): void {
    if (this.get(id).kind !== kind) throw new ModelRefusal("NotFound", `${id} is not a ${kind}`);
    this.images.delete(id);
  }

  /** A copy of one image's bytes and generations, to compare against later or to restore. */
  saveImage(id: string): { bytes: Buffer; gens: number[] } {
    const image = this.get(id);
    return { bytes: Buffer.from(image.bytes), gens: image.gens.slice() };
  }

  /** Puts back what `saveImage` copied: undoes a change the engine refused for reasons the model cannot foresee. */
  restoreImage(id: string, saved: { bytes: Uint8Array; gens: number[] }): void {
    Object.assign(this.get(id), { bytes: new Uint8Array(saved.bytes), gens: saved.gens.slice() });
  }

  /** Generation of `chunk` in image `id`; a chunk beyond the image's end counts as generation 0. */
  genAt(id: string, chunk: number): number {
    return this.get(id).gens[chunk] ?? 0;
  }

  /** Chunks (of the larger image) whose bytes differ between two images, the smaller one read as zero-extended. */
  differingChunks(idA: string, idB: string): number[] {
    const a = this.get(idA).bytes;
    const b = this.get(idB).bytes;
    const result: number[] = [];
    for (let chunk = 0; chunk < this.chunkCount(Math.max(a.length, b.length)); chunk++) {
      const start = chunk * this.chunkSizeBytes;
      const end = start + this.chunkSizeBytes;
      if (!sameZeroExtended(a.subarray(start, end), b.subarray(start, end))) result.push(chunk);
    }
    return result;
  }

  /** Chunks of image `id` holding at least one non-zero byte. */
  nonZeroChunks(id: string): number[] {
    const bytes = this.get(id).bytes;
    const result: number[] = [];
    for (let chunk = 0; chunk < this.chunkCount(bytes.length); chunk++) {
      if (!isZero(bytes.subarray(chunk * this.chunkSizeBytes, (chunk + 1) * this.chunkSizeBytes))) result.push(chunk);
    }
    return result;
  }

  private requireFree(id: string): void {
    if (this.images.has(id)) throw new ModelRefusal("AlreadyExists", `model already has an image ${id}`);
  }

  private requireProvisioning(id: string, addedBytes: number): void {
    if (this.provisionedBytes() + addedBytes > this.capacityBytes) {
      throw new ModelRefusal("CapacityExceeded", `${id} needs ${addedBytes} more provisioned bytes than the capacity allows`);
    }
  }

  private writable(id: string, offset: number, length: number): ModelImage {
    const image = this.get(id);
    if (image.kind !== "volume") throw new ModelRefusal("ReadOnly", `${id} is a snapshot`);
    checkRange(id, image.bytes.length, offset, length);
    return image;
  }

  // Every chunk the range touches gets a generation no image has held before.
  private touch(image: ModelImage, offset: number, length: number): void {
    if (length === 0) return;
    const first = Math.floor(offset / this.chunkSizeBytes);
    const last = Math.floor((offset + length - 1) / this.chunkSizeBytes);
    for (let chunk = first; chunk <= last; chunk++) image.gens[chunk] = ++this.lastGen;
  }
}

/** Chunk indices a byte range touches. */
export function chunksOf(chunkSizeBytes: number, offset: number, length: number): number[] {
  const chunks: number[] = [];
  for (let chunk = Math.floor(offset / chunkSizeBytes); chunk * chunkSizeBytes < offset + length; chunk++) chunks.push(chunk);
  return chunks;
}

/** The set of chunk indices a list of engine ranges covers. */
export function coveredChunks(chunkSizeBytes: number, ranges: { offset: number; length: number }[]): Set<number> {
  return new Set(ranges.flatMap(({ offset, length }) => chunksOf(chunkSizeBytes, offset, length)));
}

/** Throws unless ranges are sorted, coalesced, chunk-aligned, and end at a chunk boundary or exactly at `endBytes`. */
export function checkShape(ranges: { offset: number; length: number }[], chunkSizeBytes: number, endBytes: number, what: string): void {
  let previousEnd = -1;
  for (const range of ranges) {
    const end = range.offset + range.length;
    const aligned = range.offset % chunkSizeBytes === 0 && (end % chunkSizeBytes === 0 ? end <= endBytes : end === endBytes);
    if (!(range.length > 0 && aligned && range.offset > previousEnd)) {
      throw new Error(`${what}: bad range ${JSON.stringify(range)} in ${JSON.stringify(ranges)} (end ${endBytes})`);
    }
    previousEnd = end;
  }
}

function checkRange(id: string, sizeBytes: number, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > sizeBytes) {
    throw new ModelRefusal("OutOfRange", `range ${offset}+${length} is outside ${id} of ${sizeBytes} bytes`);
  }
}

// Buffer views compare with memcmp, which keeps multi-MiB images cheap to check.
function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.length === 0 || (bytes[0] === 0 && view(bytes.subarray(1)).equals(view(bytes.subarray(0, bytes.length - 1))));
}

function sameZeroExtended(a: Uint8Array, b: Uint8Array): boolean {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return view(short).equals(view(long.subarray(0, short.length))) && isZero(long.subarray(short.length));
}
