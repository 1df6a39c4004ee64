// Section 1 of `npm run bench:storage`: snapshot and clone latency must not grow with volume size.

import { type LatencySummary, summarizeLatency } from "./stats.ts";
import { type RandomInt, seededRandomInt } from "./rng.ts";
import { type BenchConfig, createSan, GiB, KiB, progress, randomPayload, TiB, timeMs, VOLUME_GROUP } from "./storage-common.ts";
import { formatBytes, formatMs, formatRatio, markdownTable } from "./table.ts";
import type { San } from "../../src/storage/san.ts";

const LATENCY_OPERATIONS = [
  "create snapshot",
  "first 4 KiB write after snapshot",
  "next 4 KiB write to the same chunk",
  "clone from snapshot",
  "clone from volume",
  "delete clone",
  "get volume",
] as const;
type LatencyOperation = (typeof LATENCY_OPERATIONS)[number];

/** A volume under the latency loop: `iterate` runs one iteration, `summary` gives p50/p99 per operation. */
interface LatencySubject {
  iterate: (iteration: number, timed: boolean) => void;
  summary: () => Map<LatencyOperation, LatencySummary>;
}

function prepareLatencySubject(san: San, sizeBytes: number, label: string, cfg: BenchConfig, random: RandomInt): LatencySubject {
  const chunkBytes = san.info().chunkSizeBytes;
  const volume = san.createVolume({ volumeGroup: VOLUME_GROUP, name: `latency-${label}`, sizeBytes });
  // Spread whole-chunk writes evenly over the volume, each at a random chunk within its stride.
  const chunkCount = sizeBytes / chunkBytes;
  const stride = Math.floor(chunkCount / cfg.spreadWrites);
  const written: number[] = [];
  const chunkPayload = randomPayload(chunkBytes);
  for (let i = 0; i < cfg.spreadWrites; i++) {
    const offset = (i * stride + random(stride)) * chunkBytes;
    san.write(volume.id, offset, chunkPayload);
    written.push(offset);
  }
  san.flush();
  progress(`snapshot: ${formatBytes(sizeBytes)} volume holds ${formatBytes(written.length * chunkBytes)} in ${written.length} chunks`);

  const samples = new Map<LatencyOperation, number[]>(LATENCY_OPERATIONS.map((op) => [op, []]));
  const small = randomPayload(4 * KiB);
  const blocksPerChunk = chunkBytes / small.length;
  const iterate = (i: number, timed: boolean): void => {
    const record = (op: LatencyOperation, ms: number): void => {
      if (timed) samples.get(op)?.push(ms);
    };
    let snapshotId = "";
    record("create snapshot", timeMs(() => {
      snapshotId = san.createSnapshot({ volumeGroup: VOLUME_GROUP, name: `snap-${label}-${i}`, sourceVolumeId: volume.id }).id;
    }));
    // The first write after a snapshot copies the map path it touches (and the chunk); the next one does not.
    const chunkOffset = written[random(written.length)] ?? 0;
    const blockA = random(blocksPerChunk);
    const blockB = (blockA + 1 + random(blocksPerChunk - 1)) % blocksPerChunk;
    record("first 4 KiB write after snapshot", timeMs(() => san.write(volume.id, chunkOffset + blockA * small.length, small)));
    record("next 4 KiB write to the same chunk", timeMs(() => san.write(volume.id, chunkOffset + blockB * small.length, small)));
    // Commit the writes untimed, so the clone below does not pay for their flush.
    san.flush();
    for (const source of [{ kind: "snapshot" as const, id: snapshotId }, { kind: "volume" as const, id: volume.id }]) {
      let cloneId = "";
      record(`clone from ${source.kind}`, timeMs(() => {
        cloneId = san.createVolume({ volumeGroup: VOLUME_GROUP, name: `clone-${label}-${source.kind}-${i}`, sizeBytes, source }).id;
      }));
      record("delete clone", timeMs(() => san.deleteVolume(cloneId)));
    }
    // No commit and no I/O: what describing the volume (allocatedBytes, usedBytes) costs by itself.
    record("get volume", timeMs(() => san.getVolume(volume.id)));
  };
  return { iterate, summary: () => new Map(LATENCY_OPERATIONS.map((op) => [op, summarizeLatency(samples.get(op) ?? [])])) };
}

export function benchSnapshotClone(dir: string, cfg: BenchConfig): string {
  const san = createSan(dir, 4 * TiB);
  const random = seededRandomInt(1);
  try {
    const smallSubject = prepareLatencySubject(san, 1 * GiB, "1gib", cfg, random);
    const largeSubject = prepareLatencySubject(san, 1 * TiB, "1tib", cfg, random);
    // Alternate the sizes, so a burst of background I/O hits both alike rather than skewing their ratio.
    for (let i = 0; i < cfg.warmupIterations + cfg.snapshotIterations; i++) {
      smallSubject.iterate(i, i >= cfg.warmupIterations);
      largeSubject.iterate(i, i >= cfg.warmupIterations);
    }
    const small = { rows: smallSubject.summary() };
    const large = { rows: largeSubject.summary() };
    const rows = LATENCY_OPERATIONS.map((op) => {
      const a = small.rows.get(op);
      const b = large.rows.get(op);
      if (!a || !b) throw new Error(`No samples for ${op}.`);
      return [op, formatMs(a.p50Ms), formatMs(a.p99Ms), formatMs(b.p50Ms), formatMs(b.p99Ms), formatRatio(b.p50Ms / a.p50Ms), formatRatio(b.p99Ms / a.p99Ms)];
    });
    const table = markdownTable(["operation", "1 GiB p50", "1 GiB p99", "1 TiB p50", "1 TiB p99", "1 TiB/1 GiB p50", "1 TiB/1 GiB p99"], rows);
    const verdicts = (["create snapshot", "clone from snapshot", "clone from volume"] as const).map((op) => {
      const ratio = (large.rows.get(op)?.p50Ms ?? Number.NaN) / (small.rows.get(op)?.p50Ms ?? Number.NaN);
      return `${op} ${formatRatio(ratio)} (${ratio <= 1.5 ? "met" : "MISSED"})`;
    });
    return [
      "### Snapshot and clone latency against volume size",
      "",
      `${cfg.snapshotIterations} timed iterations per size (after ${cfg.warmupIterations} warm-up; the sizes alternate), each: snapshot the volume, ` +
        "write 4 KiB into a random written chunk (the first write after the snapshot copies the map path and the chunk), " +
        "write another 4 KiB block of that chunk, flush (untimed), clone the new snapshot and the volume (each clone deleted again), " +
        "get the volume's info. " +
        `Each volume first received ${cfg.spreadWrites} × 64 KiB writes spread evenly over its whole size; snapshots accumulate ` +
        `(up to ${cfg.warmupIterations + cfg.snapshotIterations} per volume). SAN capacity 4 TiB, ${formatBytes(san.info().chunkSizeBytes)} chunks. ` +
        "Target: 1 TiB/1 GiB ≤ 1.5× for snapshot and clone.",
      "",
      table,
      "",
      `1 TiB/1 GiB p50, target ≤ 1.5×: ${verdicts.join("; ")}.`,
    ].join("\n");
  } finally {
    san.close();
  }
}
