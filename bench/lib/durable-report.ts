// The markdown of `npm run bench:durable`: export, restore and hydration tables with their targets.

import { PROGRESS_EVERY_CHUNKS } from "../../src/storage/durable/hydration.ts";
import { type DurableBenchConfig, mibPerSecond } from "./durable-common.ts";
import type { ExportTiming } from "./durable-export.ts";
import type { FirstReadResult, HydrationResult } from "./durable-restore.ts";
import { median } from "./stats.ts";
import { formatBytes, formatMs, formatNumber, markdownTable } from "./table.ts";

/** Everything one run measured. */
export interface DurableResults {
  chunkSizeBytes: number;
  fillMs: number;
  exports: ExportTiming[];
  firstReads: FirstReadResult[];
  hydration: HydrationResult;
}

/** Incremental exports may take at most this share of the full export's time. */
const INCREMENTAL_TARGET = 0.05;
/** Time to first read of the large disk snapshot over the small one's: "independent of size" read as at most this. */
const FIRST_READ_TARGET = 1.5;

/** Appended to a target line that was missed. */
const MISSED_HINT = " `node bench/durable.bench.ts --profile` shows where the main thread spends each phase.";

const ratio = (value: number, digits = 2): string => (Number.isFinite(value) ? `${value.toFixed(digits)}×` : "n/a");
const verdict = (met: boolean): string => (met ? "met" : "MISSED");
const percentRange = (values: readonly number[]): string => {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  return low === high ? `${low}%` : `${low}–${high}%`;
};

function exportSection(cfg: DurableBenchConfig, results: DurableResults): { text: string; summary: string } {
  const full = results.exports.find((e) => e.kind === "full");
  if (!full) throw new Error("The bench has no full export to compare the incremental ones with.");
  const layouts = [
    { kind: "random" as const, label: "incremental, random 64 KiB chunks" },
    { kind: "contiguous" as const, label: "incremental, one contiguous run" },
  ].map(({ kind, label }) => {
    const runs = results.exports.filter((e) => e.kind === kind);
    return { kind, label, runs, ms: median(runs.map((r) => r.ms)) };
  });
  const chunks = layouts[0]?.runs[0]?.changedChunks ?? 0;
  const rows = [
    ["full", "all written data", formatNumber(full.changedChunks), formatBytes(full.usedBytes), formatMs(full.ms), formatNumber(mibPerSecond(full.usedBytes, full.ms), 1), "—"],
    ...layouts.map((l) => [
      l.label,
      `${formatNumber(cfg.changedFraction * 100)}%`,
      formatNumber(median(l.runs.map((r) => r.changedChunks))),
      formatBytes(median(l.runs.map((r) => r.usedBytes))),
      `${formatMs(l.ms)} (${l.runs.map((r) => formatMs(r.ms)).join(", ")})`,
      formatNumber(mibPerSecond(median(l.runs.map((r) => r.usedBytes)), l.ms), 1),
      ratio(l.ms / full.ms, 3),
    ]),
  ];
  const fillMiBps = mibPerSecond(cfg.largeBytes, results.fillMs);
  const text = [
    "### Durable tier: full and incremental export",
    "",
    `A ${formatBytes(cfg.largeBytes)} volume was filled with sequential ${formatBytes(cfg.fillWriteBytes)} writes of non-zero data (every 4 KiB block distinct) ` +
      `and flushed, in ${formatMs(results.fillMs)} (${formatNumber(fillMiBps, 1)} MiB/s), then exported in full. Before each incremental export, ` +
      `${formatNumber(cfg.changedFraction * 100)}% of the volume (${formatNumber(chunks)} chunks of ${formatBytes(results.chunkSizeBytes)}) was overwritten and flushed, untimed: ` +
      `"random" writes whole chunks picked uniformly over the volume, "contiguous" one chunk-aligned run in ${formatBytes(cfg.fillWriteBytes)} writes. ` +
      `The two layouts alternate, ${cfg.incrementalRepetitions} exports each, every one against the member before it; the time is their median (each run in brackets). ` +
      "An export is timed from `exportDiskSnapshot` until `waitForDiskSnapshot` resolves at 100%. It reads the pinned chunks from the SAN's extents file, " +
      "which is still in the page cache after the fill, and puts 4 MiB segment objects into the default store DATA_DIR/durable-store on the same " +
      `filesystem, each written to a temporary file, fsynced, renamed and its directory fsynced. Target: incremental/full ≤ ${INCREMENTAL_TARGET}.`,
    "",
    markdownTable(["export", "changed", "chunks exported", "usedBytes", "time", "MiB/s", "incremental/full"], rows, ["left", "left"]),
  ].join("\n");
  const summary =
    `Incremental/full export time, target ≤ ${INCREMENTAL_TARGET}: ${layouts.map((l) => `${l.kind} ${ratio(l.ms / full.ms, 3)} (${verdict(l.ms / full.ms <= INCREMENTAL_TARGET)})`).join("; ")}.` +
    (layouts.some((l) => l.ms / full.ms > INCREMENTAL_TARGET) ? MISSED_HINT : "");
  return { text, summary };
}

function restoreSection(cfg: DurableBenchConfig, results: DurableResults): { text: string; summary: string } {
  const [small, ...large] = results.firstReads;
  if (!small) throw new Error("The bench restored no disk snapshot.");
  const rows = results.firstReads.map((r) => [
    r.subject.label,
    formatBytes(r.subject.volume.sizeBytes),
    formatNumber(r.subject.member.chainLength),
    formatMs(r.create.p50Ms),
    formatMs(r.read.p50Ms),
    formatMs(r.total.p50Ms),
    formatMs(r.slowestMs),
    `${Math.max(...r.percentAtRead)}%`,
    r === small ? "—" : ratio(r.total.p50Ms / small.total.p50Ms),
  ]);
  const percents = results.firstReads.flatMap((r) => r.percentAtRead);
  const text = [
    "### Durable tier: restore time to first read",
    "",
    `Each restore calls \`createVolume\` with the disk snapshot as its source and then \`readAsync\` of ${formatBytes(cfg.firstReadBytes)} at a random 4 KiB-aligned ` +
      "offset in the middle half of the volume, checked against the written data; the volume is then deleted and its hydration stopped (untimed). " +
      `${cfg.firstReadIterations} restores per disk snapshot, the disk snapshots in rotating order; "max" is the slowest of them. ` +
      `Hydration had reached ${percentRange(percents)} when the first read returned, so the reads were served from the store. ` +
      `"members read" is the chain a restore resolves: the full member plus the incremental ones after it. Target: time to first read independent of size ` +
      `(${formatBytes(cfg.largeBytes)}/${formatBytes(cfg.smallBytes)} ≈ 1×, read here as ≤ ${FIRST_READ_TARGET}×).`,
    "",
    markdownTable(["disk snapshot", "size", "members read", "create p50", "first read p50", "time to first read p50", "max", "hydrated at read", `vs ${formatBytes(cfg.smallBytes)}`], rows, ["left"]),
  ].join("\n");
  const ratios = large.map((r) => ({ label: r.subject.label, value: r.total.p50Ms / small.total.p50Ms }));
  const summary =
    `Time to first read, ${formatBytes(cfg.largeBytes)}/${formatBytes(cfg.smallBytes)} p50, target ≈ 1× (≤ ${FIRST_READ_TARGET}×): ` +
    `${ratios.map((r) => `${r.label} ${ratio(r.value)} (${verdict(r.value <= FIRST_READ_TARGET)})`).join("; ")}.` +
    (ratios.some((r) => r.value > FIRST_READ_TARGET) ? MISSED_HINT : "");
  return { text, summary };
}

function hydrationSection(results: DurableResults): string {
  const h = results.hydration;
  return [
    "### Durable tier: hydration throughput",
    "",
    `The ${h.subject.label} disk snapshot restored once more, timed from \`createVolume\` until \`waitForHydration\` resolves. Hydration copies ` +
      `every chunk that holds data, ${PROGRESS_EVERY_CHUNKS} chunks per batch (ranged gets of neighbouring slots of one segment object), writes them into the volume, ` +
      `and flushes the SAN and records its progress after each batch. Afterwards ${formatNumber(h.verifiedBlocks)} random 4 KiB blocks were read ` +
      "with the synchronous `read`, which refuses a volume still hydrating, and matched the written data.",
    "",
    markdownTable(
      ["restored disk snapshot", "members read", "data hydrated", "time", "MiB/s"],
      [[h.subject.label, formatNumber(h.subject.member.chainLength), formatBytes(h.dataBytes), formatMs(h.ms), formatNumber(mibPerSecond(h.dataBytes, h.ms), 1)]],
      ["left"],
    ),
  ].join("\n");
}

/** The report body: three tables, then the targets in one place. */
export function formatDurableReport(cfg: DurableBenchConfig, results: DurableResults): string {
  const exports = exportSection(cfg, results);
  const restores = restoreSection(cfg, results);
  return [exports.text, restores.text, hydrationSection(results), exports.summary, restores.summary].join("\n\n");
}
