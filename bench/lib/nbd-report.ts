// Markdown report of `npm run bench:nbd`: throughput with esan/peer ratios and target verdicts, server CPU per
// thread group, and fio latency.

import type { ServerKey } from "./nbd-servers.ts";
import type { Measurement, Workload } from "./nbd-workloads.ts";
import { formatNumber, formatRatio, markdownTable } from "./table.ts";

/** Every measurement of the run: workload id → server → measurement. */
export type Results = Map<string, Map<ServerKey, Measurement>>;

/** The targets of issue 4, as ratios of esan's throughput to the peer's. */
export const TARGETS = { sequentialVsNbdkit: 1.0, randomVsNbdkit: 0.8, vsQemu: 1.5 } as const;

function formatValue(m: Measurement | undefined): string {
  if (!m) return "—";
  return m.unit === "MiB/s" ? `${formatNumber(m.value, 0)} MiB/s` : `${formatNumber(m.value, 0)} IOPS`;
}

/** How far a server's rounds spread: the largest round over the smallest ("1.00" for a single round). */
function spread(m: Measurement | undefined): string {
  if (!m || m.roundValues.length === 0) return "—";
  return (Math.max(...m.roundValues) / Math.min(...m.roundValues)).toFixed(2);
}

function ratioOf(results: Results, workload: Workload, peer: ServerKey): number {
  const row = results.get(workload.id);
  return (row?.get("esan")?.value ?? Number.NaN) / (row?.get(peer)?.value ?? Number.NaN);
}

/** The nbdkit target of a row: 1.0× for sequential rows, 0.8× for random ones. */
function nbdkitTarget(workload: Workload): number {
  return workload.target === "sequential" ? TARGETS.sequentialVsNbdkit : TARGETS.randomVsNbdkit;
}

function verdict(ratio: number, target: number): string {
  if (!Number.isFinite(ratio)) return "n/a";
  return ratio >= target ? "met" : "MISSED";
}

/** The main table: throughput per server, both ratios, and whether each target is met. */
export function throughputTable(workloads: readonly Workload[], results: Results): string {
  const rows = workloads.map((w) => {
    const row = results.get(w.id);
    const vsNbdkit = ratioOf(results, w, "nbdkit");
    const vsQemu = ratioOf(results, w, "qemu");
    return [
      w.label,
      formatValue(row?.get("esan")),
      formatValue(row?.get("nbdkit")),
      formatValue(row?.get("qemu")),
      formatRatio(vsNbdkit),
      `≥ ${TARGETS[w.target === "sequential" ? "sequentialVsNbdkit" : "randomVsNbdkit"].toFixed(1)}×: ${verdict(vsNbdkit, nbdkitTarget(w))}`,
      formatRatio(vsQemu),
      `≥ 1.5×: ${verdict(vsQemu, TARGETS.vsQemu)}`,
      (["esan", "nbdkit", "qemu"] as const).map((s) => spread(row?.get(s))).join(" / "),
    ];
  });
  const headers = ["workload", "esan", "nbdkit file", "qemu-nbd qcow2", "esan/nbdkit", "target", "esan/qemu", "target", "max/min of rounds (esan / nbdkit / qemu)"];
  return markdownTable(headers, rows, ["left", "right", "right", "right", "right", "left", "right", "left", "right"]);
}

/** One sentence per target: how many rows met it and which missed, with their ratios. */
export function targetSummary(workloads: readonly Workload[], results: Results): string {
  const line = (name: string, rows: readonly Workload[], peer: ServerKey, target: (w: Workload) => number): string => {
    const measured = rows.filter((w) => Number.isFinite(ratioOf(results, w, peer)));
    if (measured.length === 0) return `- ${name}: not measured in this run.`;
    const missed = measured.filter((w) => ratioOf(results, w, peer) < target(w));
    const detail = missed.length === 0 ? "" : `; missed: ${missed.map((w) => `${w.label} ${formatRatio(ratioOf(results, w, peer))}`).join(", ")}`;
    return `- ${name}: ${missed.length === 0 ? "met" : "NOT met"} (met on ${measured.length - missed.length} of ${measured.length} rows)${detail}.`;
  };
  return [
    line("sequential ≥ 1.0× nbdkit file", workloads.filter((w) => w.target === "sequential"), "nbdkit", nbdkitTarget),
    line("4 KiB random ≥ 0.8× nbdkit file", workloads.filter((w) => w.target === "random"), "nbdkit", nbdkitTarget),
    line("every row ≥ 1.5× qemu-nbd qcow2", workloads, "qemu", () => TARGETS.vsQemu),
  ].join("\n");
}

const percent = (share: number | undefined): string => (share === undefined ? "—" : `${(share * 100).toFixed(0)}%`);

/**
 * Server CPU while each workload ran, as a share of one core: esan split into its main thread, libuv's thread pool
 * (large reads), V8's helper threads (garbage collection, compilation) and the rest, plus how long its main thread
 * waited runnable for a core.
 */
export function cpuTable(workloads: readonly Workload[], results: Results): string {
  const rows = workloads.map((w) => {
    const row = results.get(w.id);
    const esan = row?.get("esan")?.cpu;
    return [
      w.label,
      percent(esan?.main),
      percent(esan?.mainWaiting),
      percent(esan?.pool),
      percent(esan?.v8),
      percent(esan?.other),
      percent(esan?.total),
      percent(row?.get("nbdkit")?.cpu.total),
      percent(row?.get("qemu")?.cpu.total),
    ];
  });
  const headers = ["workload", "esan main thread", "main waiting for a core", "esan thread pool", "esan V8 helpers", "esan other threads", "esan total", "nbdkit total", "qemu-nbd total"];
  return markdownTable(headers, rows);
}

const micros = (us: number | undefined): string => (us === undefined ? "—" : us >= 1000 ? `${(us / 1000).toPrecision(3)} ms` : `${us.toPrecision(3)} µs`);

/** fio completion latency p50/p99 per server, for the random rows. */
export function latencyTable(workloads: readonly Workload[], results: Results): string {
  const servers: ServerKey[] = ["esan", "nbdkit", "qemu"];
  const rows = workloads
    .filter((w) => w.kind === "fio")
    .map((w) => {
      const row = results.get(w.id);
      return [w.label, ...servers.map((s) => micros(row?.get(s)?.p50Us)), ...servers.map((s) => micros(row?.get(s)?.p99Us))];
    });
  return markdownTable(["workload", "esan p50", "nbdkit p50", "qemu-nbd p50", "esan p99", "nbdkit p99", "qemu-nbd p99"], rows);
}
