// A flat reference model of the durable tier: volumes and snapshots are byte arrays, and a disk snapshot is a
// copy of the bytes its source held when the export was requested. Nothing is shared and nothing is incremental,
// so every answer the engine gives through families, deltas, folds and hydration has one plain value to match.

/** A volume of the model; `restoredFrom` names the disk snapshot a restored volume was created from. */
export interface ModelVolume {
  bytes: Uint8Array;
  restoredFrom: string | null;
}

/** An instant snapshot: its bytes, the volume it was taken of, and that volume's family key. */
export interface ModelSnapshot {
  bytes: Uint8Array;
  sourceId: string;
  sourceResourceId: string;
  family: string;
}

/** A disk snapshot: the source's bytes at export time and what the engine must report about it. */
export interface ModelDiskSnapshot {
  name: string;
  content: Uint8Array;
  exportedFrom: string;
  sourceResourceId: string;
  /** The source volume's uniqueId: the family key. */
  family: string;
  /** Chunks the source had allocated when exported: a full member stores exactly these. */
  allocatedChunks: number;
}

/** The flat model. Ids are engine ids (`VG/NAME`); maps keep creation order, as the engine's listings do. */
export class DurableModel {
  readonly chunkSizeBytes: number;
  readonly volumes = new Map<string, ModelVolume>();
  readonly snapshots = new Map<string, ModelSnapshot>();
  readonly diskSnapshots = new Map<string, ModelDiskSnapshot>();

  constructor(chunkSizeBytes: number) {
    this.chunkSizeBytes = chunkSizeBytes;
  }

  volume(id: string): ModelVolume {
    const volume = this.volumes.get(id);
    if (volume === undefined) throw new Error(`model has no volume ${id}`);
    return volume;
  }

  diskSnapshot(name: string): ModelDiskSnapshot {
    const member = this.diskSnapshots.get(name);
    if (member === undefined) throw new Error(`model has no disk snapshot ${name}`);
    return member;
  }

  /** An empty volume reads as zeroes. */
  createVolume(id: string, sizeBytes: number): void {
    this.volumes.set(id, { bytes: new Uint8Array(sizeBytes), restoredFrom: null });
  }

  write(id: string, offset: number, data: Uint8Array): void {
    this.volume(id).bytes.set(data, offset);
  }

  /** Zeroes, trims and holes all read back as zeroes. */
  zero(id: string, offset: number, length: number): void {
    this.volume(id).bytes.fill(0, offset, offset + length);
  }

  /** Grows a volume with zeroes. */
  resize(id: string, sizeBytes: number): void {
    const volume = this.volume(id);
    volume.bytes = zeroExtended(volume.bytes, sizeBytes);
  }

  /** A volume cloned from another volume, zero-extended to `sizeBytes`. */
  clone(id: string, sourceId: string, sizeBytes: number): void {
    this.volumes.set(id, { bytes: zeroExtended(this.volume(sourceId).bytes, sizeBytes), restoredFrom: null });
  }

  snapshot(id: string, volumeId: string, family: string): void {
    this.snapshots.set(id, { bytes: this.volume(volumeId).bytes.slice(), sourceId: volumeId, sourceResourceId: volumeId, family });
  }

  /** The bytes of a volume or snapshot. */
  image(id: string): Uint8Array {
    const image = this.volumes.get(id) ?? this.snapshots.get(id);
    if (image === undefined) throw new Error(`model has no image ${id}`);
    return image.bytes;
  }

  /** Records an export: the member holds the source's bytes as they are now, whenever the copy finishes. */
  exportDiskSnapshot(member: Omit<ModelDiskSnapshot, "content">): void {
    this.diskSnapshots.set(member.name, { ...member, content: this.image(member.exportedFrom).slice() });
  }

  /** A volume restored from a disk snapshot: its content, zero-extended to `sizeBytes`. */
  restore(id: string, name: string, sizeBytes: number): void {
    this.volumes.set(id, { bytes: zeroExtended(this.diskSnapshot(name).content, sizeBytes), restoredFrom: name });
  }

  /** The members of one family, oldest first. */
  family(family: string): ModelDiskSnapshot[] {
    return [...this.diskSnapshots.values()].filter((member) => member.family === family);
  }
}

/** `bytes` grown to `sizeBytes` with zeroes (a copy). */
export function zeroExtended(bytes: Uint8Array, sizeBytes: number): Uint8Array {
  const out = new Uint8Array(sizeBytes);
  out.set(bytes.subarray(0, Math.min(bytes.length, sizeBytes)));
  return out;
}

/** Chunks over the larger of two images whose bytes differ, the shorter one read as zero-extended. */
export function differingChunks(chunkSizeBytes: number, a: Uint8Array, b: Uint8Array): number[] {
  const size = Math.max(a.length, b.length);
  const [wideA, wideB] = [view(zeroExtended(a, size)), view(zeroExtended(b, size))];
  const chunks: number[] = [];
  for (let chunk = 0; chunk * chunkSizeBytes < size; chunk++) {
    const start = chunk * chunkSizeBytes;
    const end = Math.min(size, start + chunkSizeBytes);
    if (!wideA.subarray(start, end).equals(wideB.subarray(start, end))) chunks.push(chunk);
  }
  return chunks;
}

/** Where two byte arrays first differ, as `byte N: got X, want Y` (or `equal`), for failure messages. */
export function firstDifference(actual: Uint8Array, expected: Uint8Array): string {
  if (actual.length !== expected.length) return `length ${actual.length}, want ${expected.length}`;
  if (view(actual).equals(view(expected))) return "equal";
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  let end = at;
  while (end < actual.length && actual[end] !== expected[end]) end++;
  return `bytes from ${at} (${end - at} differing in a row): got ${hex(actual, at)}…, want ${hex(expected, at)}…`;
}

function hex(bytes: Uint8Array, at: number): string {
  return Buffer.from(bytes.subarray(at, at + 8)).toString("hex");
}

// Buffer views compare with memcmp, which keeps multi-MiB images cheap to check.
function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
