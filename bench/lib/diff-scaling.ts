// Section 2 of `npm run bench:storage`: diff time must grow with the change, not with the volume.

import { type RandomInt, sampleDistinct, seededRandomInt } from "./rng.ts";
import { type LatencySummary, median, summarizeLatency } from "./stats.ts";
import { type BenchConfig, createSan, KiB, progress, randomPayload, timeMs, VOLUME_GROUP } from "./storage-common.ts";
import { formatBytes, formatMs, formatNumber, formatRatio, markdownTable } from "./table.ts";
import type { San } from "../../src/storage/san.ts";

interface DiffRow {
  fraction: number;
  pattern: "random" | "clustered";
  changedChunks: number;
  reportedChunks: number;
  ranges: number;
  medianMs: number;
}

/** Snapshot, clone and info latency on a volume with much data mapped; `snapshot` returns the new snapshot's id. */
function measureMappedLatency(san: San, volumeId: string, cfg: BenchConfig, snapshot: () => string): Map<string, LatencySummary> {
  const samples = new Map<string, number[]>(["create snapshot", "clone from snapshot", "delete clone", "get volume"].map((op) => [op, []]));
  const volume = san.getVolume(volumeId);
  for (let i = 0; i < cfg.mappedIterations; i++) {
    let snapshotId = "";
    samples.get("create snapshot")?.push(timeMs(() => (snapshotId = snapshot())));
    let cloneId = "";
    samples.get("clone from snapshot")?.push(timeMs(() => {
      cloneId = san.createVolume({ volumeGroup: VOLUME_GROUP, name: `mapped-clone-${i}`, sizeBytes: volume.sizeBytes, source: { kind: "snapshot", id: snapshotId } }).id;
    }));
    samples.get("delete clone")?.push(timeMs(() => san.deleteVolume(cloneId)));
    samples.get("get volume")?.push(timeMs(() => san.getVolume(volumeId)));
  }
  progress(`diff: snapshot of the filled volume p50 ${formatMs(summarizeLatency(samples.get("create snapshot") ?? []).p50Ms)}`);
  return new Map([...samples].map(([op, ms]) => [op, summarizeLatency(ms)]));
}

/** Writes 4 KiB at a random block of each chunk, so setup stays fast while every chosen chunk changes. */
function touchChunks(san: San, volumeId: string, chunks: readonly number[], chunkBytes: number, random: RandomInt, payload: Buffer): void {
  const blocks = chunkBytes / payload.length;
  for (const chunk of chunks) san.write(volumeId, chunk * chunkBytes + random(blocks) * payload.length, payload);
}

export function benchDiff(dir: string, cfg: BenchConfig): string {
  const san = createSan(dir, 2 * cfg.diffVolumeBytes);
  const random = seededRandomInt(2);
  try {
    const chunkBytes = san.info().chunkSizeBytes;
    const chunkCount = cfg.diffVolumeBytes / chunkBytes;
    const volume = san.createVolume({ volumeGroup: VOLUME_GROUP, name: "diff", sizeBytes: cfg.diffVolumeBytes });
    const payload = randomPayload(4 * KiB);
    const fill = sampleDistinct(random, chunkCount, Math.round(chunkCount * cfg.diffFillFraction));
    const fillMs = timeMs(() => {
      touchChunks(san, volume.id, fill, chunkBytes, random, payload);
      san.flush();
    });
    progress(`diff: filled ${formatNumber(fill.length)} of ${formatNumber(chunkCount)} chunks in ${formatMs(fillMs)}`);

    let snapshotSerial = 0;
    const snapshot = (): string =>
      san.createSnapshot({ volumeGroup: VOLUME_GROUP, name: `diff-${snapshotSerial++}`, sourceVolumeId: volume.id }).id;
    const unsnapshotted: number[] = [];
    for (let i = 0; i < cfg.mappedIterations; i++) unsnapshotted.push(timeMs(() => san.getVolume(volume.id)));
    let previous = snapshot();
    const mappedLatency = measureMappedLatency(san, volume.id, cfg, () => (previous = snapshot()));
    mappedLatency.set("get volume, before its first snapshot", summarizeLatency(unsnapshotted));
    const rows: DiffRow[] = [];
    const cases: { fraction: number; pattern: DiffRow["pattern"] }[] = [{ fraction: 0, pattern: "random" }];
    for (const fraction of [0.001, 0.01, 0.1]) for (const pattern of ["random", "clustered"] as const) cases.push({ fraction, pattern });
    for (const { fraction, pattern } of cases) {
      const count = Math.round(chunkCount * fraction);
      let chunks: number[];
      if (pattern === "random") {
        chunks = sampleDistinct(random, chunkCount, count);
      } else {
        const start = random(chunkCount - count + 1);
        chunks = Array.from({ length: count }, (_, i) => start + i);
      }
      const writeMs = timeMs(() => touchChunks(san, volume.id, chunks, chunkBytes, random, payload));
      let next = "";
      const snapshotMs = timeMs(() => (next = snapshot()));
      const times: number[] = [];
      let result = san.diff(previous, next);
      for (let r = 0; r < cfg.diffRepetitions; r++) times.push(timeMs(() => (result = san.diff(previous, next))));
      const reportedChunks = result.changedBytes / chunkBytes;
      if (reportedChunks < count) throw new Error(`diff reported ${reportedChunks} changed chunks but ${count} were written; a diff must never miss a change.`);
      rows.push({ fraction, pattern, changedChunks: count, reportedChunks, ranges: result.ranges.length, medianMs: median(times) });
      progress(`diff: ${pattern} ${fraction * 100}%: ${formatNumber(count)} writes ${formatMs(writeMs)}, snapshot ${formatMs(snapshotMs)}, diff ${formatMs(median(times))}`);
      previous = next;
    }

    const medianAt = (fraction: number, pattern: DiffRow["pattern"]): number =>
      rows.find((r) => r.fraction === fraction && r.pattern === pattern)?.medianMs ?? Number.NaN;
    const baseline = (pattern: DiffRow["pattern"]): number => medianAt(0.001, pattern);
    const growth = (pattern: DiffRow["pattern"]): number => medianAt(0.1, pattern) / baseline(pattern);
    const table = markdownTable(
      ["changed", "pattern", "changed chunks", "reported chunks", "ranges", "diff (median)", "per changed chunk", "vs 0.1%"],
      rows.map((r) => [
        `${r.fraction * 100}%`,
        r.fraction === 0 ? "(no writes)" : r.pattern,
        formatNumber(r.changedChunks),
        formatNumber(r.reportedChunks),
        formatNumber(r.ranges),
        formatMs(r.medianMs),
        r.changedChunks > 0 ? formatMs(r.medianMs / r.changedChunks) : "—",
        r.fraction === 0 ? "—" : formatRatio(r.medianMs / baseline(r.pattern)),
      ]),
      ["left", "left"],
    );
    return [
      "### Diff time against the amount changed",
      "",
      `A ${formatBytes(cfg.diffVolumeBytes)} volume (${formatNumber(chunkCount)} chunks of ${formatBytes(chunkBytes)}) had ` +
        `${cfg.diffFillFraction * 100}% of its chunks written (one 4 KiB write each, in ${formatMs(fillMs)}) and was snapshotted. ` +
        "Each row then writes 4 KiB into the given share of chunks, snapshots again, and times `san.diff(previous, new)` " +
        `(median of ${cfg.diffRepetitions}). "random" picks distinct chunks uniformly over the volume; "clustered" changes one ` +
        "contiguous run at a random place. Target: time proportional to the change (10%/0.1% ≈ 100×, constant time per changed chunk).",
      "",
      table,
      "",
      `10%/0.1% diff time, target ≈ 100×: random ${formatRatio(growth("random"))}, clustered ${formatRatio(growth("clustered"))}.`,
      "",
      "### Snapshot and clone latency against mapped data",
      "",
      `The same ${formatBytes(cfg.diffVolumeBytes)} volume right after the fill above, with ${formatNumber(fill.length)} chunks mapped ` +
        `(the latency volumes of the first table map ${cfg.spreadWrites}). ${cfg.mappedIterations} iterations of: snapshot, ` +
        "clone the snapshot, delete the clone, get the volume; nothing is written in between, so no commit carries earlier writes. " +
        "The last row gets the volume before any snapshot of it exists, when it holds all its chunks alone. " +
        "Snapshot and clone should cost the same as on the lightly mapped volumes.",
      "",
      markdownTable(
        ["operation", "p50", "p99"],
        [...mappedLatency].map(([op, summary]) => [op, formatMs(summary.p50Ms), formatMs(summary.p99Ms)]),
      ),
    ].join("\n");
  } finally {
    san.close();
  }
}
