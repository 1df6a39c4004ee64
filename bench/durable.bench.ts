// `npm run bench:durable`: the durable snapshot tier on a real disk. Full export of 4 GiB of written data,
// incremental exports of 1% changes as a share of it, restore time to first read for a small and a large disk
// snapshot, and hydration throughput. Prints markdown tables and appends them to BENCHMARKS.md.
//
// Flags: --quick (256 MiB and 16 MiB volumes, fewer repetitions; never appended), --no-append (print only),
// --profile (under V8's CPU profiler, as `node --cpu-prof`; prints where the main thread spent each phase and keeps
// the .cpuprofile; never appended).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { DataPattern, type DurableBenchConfig, parseDurableBenchConfig, progress } from "./lib/durable-common.ts";
import { type ChangeLayout, changeVolume, type ExportTiming, exportVolume, fillVolume, type WrittenVolume } from "./lib/durable-export.ts";
import { formatPhaseProfiles, type ProfiledPhase, RunProfiler } from "./lib/durable-profile.ts";
import { type DurableResults, formatDurableReport } from "./lib/durable-report.ts";
import { measureFirstReads, measureHydration, type RestoreSubject } from "./lib/durable-restore.ts";
import { appendBenchmarkSection, describeMachine } from "./lib/report.ts";
import { seededRandomInt } from "./lib/rng.ts";
import { createSan, timeMs, VOLUME_GROUP } from "./lib/storage-common.ts";
import { formatBytes, formatMs } from "./lib/table.ts";
import type { San } from "../src/storage/san.ts";

const COMMAND = "npm run bench:durable";
/** Sampling interval of `--profile`: fine enough for restores that take a few milliseconds. */
const PROFILE_INTERVAL_US = 100;

function writtenVolume(san: San, name: string, sizeBytes: number): WrittenVolume {
  const volumeId = san.createVolume({ volumeGroup: VOLUME_GROUP, name, sizeBytes }).id;
  return { volumeId, sizeBytes, pattern: new DataPattern(sizeBytes, san.chunkSizeBytes) };
}

/** Runs every measurement on one SAN, in the order export, restore, hydration. */
async function runBench(san: San, cfg: DurableBenchConfig): Promise<DurableResults> {
  const random = seededRandomInt(7);
  const large = writtenVolume(san, "large", cfg.largeBytes);
  const fillMs = fillVolume(san, large, cfg.fillWriteBytes, 1);

  const exports: ExportTiming[] = [];
  const full = await exportVolume(san, large, "large-full", null);
  exports.push({ kind: "full", changedChunks: cfg.largeBytes / san.chunkSizeBytes, usedBytes: full.usedBytes, ms: full.ms, span: full.span });
  progress(`full export of ${formatBytes(cfg.largeBytes)}: ${formatMs(full.ms)}`);
  let newest = full.member;
  let generation = 2;
  for (let repetition = 0; repetition < cfg.incrementalRepetitions; repetition++) {
    for (const layout of ["random", "contiguous"] satisfies ChangeLayout[]) {
      const changedChunks = changeVolume(san, large, layout, cfg.changedFraction, cfg.fillWriteBytes, generation++, random);
      const incremental = await exportVolume(san, large, `large-${layout}-${repetition}`, newest);
      exports.push({ kind: layout, changedChunks, usedBytes: incremental.usedBytes, ms: incremental.ms, span: incremental.span });
      newest = incremental.member;
      progress(`incremental export, ${layout}, ${changedChunks} chunks changed: ${formatMs(incremental.ms)} (usedBytes ${formatBytes(incremental.usedBytes)})`);
    }
  }

  const small = writtenVolume(san, "small", cfg.smallBytes);
  fillVolume(san, small, cfg.fillWriteBytes, 1);
  const smallFull = await exportVolume(san, small, "small-full", null);

  const subjects: RestoreSubject[] = [
    { label: `${formatBytes(cfg.smallBytes)} full`, volume: small, member: smallFull.member },
    { label: `${formatBytes(cfg.largeBytes)} full`, volume: large, member: full.member },
    { label: `${formatBytes(cfg.largeBytes)} newest`, volume: large, member: newest },
  ];
  const firstReads = await measureFirstReads(san, subjects, cfg, random);
  const hydration = await measureHydration(san, subjects[2]!, cfg, random);
  return { chunkSizeBytes: san.chunkSizeBytes, fillMs, exports, firstReads, hydration };
}

/** The measured phases of a run, each with the spans of its runs, for `--profile`. */
function profiledPhases(results: DurableResults): ProfiledPhase[] {
  const exportsOf = (kind: string): ProfiledPhase => ({ label: `${kind} export`, spans: results.exports.filter((e) => e.kind === kind).map((e) => e.span) });
  return [
    exportsOf("full"),
    exportsOf("random"),
    exportsOf("contiguous"),
    ...results.firstReads.map((r) => ({ label: `time to first read, ${r.subject.label}`, spans: r.spans })),
    { label: `hydration, ${results.hydration.subject.label}`, spans: [results.hydration.span] },
  ];
}

async function main(): Promise<void> {
  const cfg = parseDurableBenchConfig(process.argv.slice(2));
  // On the real disk under the OS temp dir (not tmpfs), so fsyncs and the page cache behave as in production.
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "esan-bench-durable-"));
  const machine = describeMachine(tmpRoot);
  const started = performance.now();
  try {
    const san = createSan(path.join(tmpRoot, "san"), cfg.capacityBytes);
    let results: DurableResults;
    let profileText = "";
    try {
      machine.push(`SAN: capacity ${formatBytes(cfg.capacityBytes)}, ${formatBytes(san.chunkSizeBytes)} chunks; durable store DATA_DIR/durable-store (the default), on the same filesystem`);
      const profiler = cfg.profile ? await RunProfiler.start(PROFILE_INTERVAL_US) : null;
      results = await runBench(san, cfg);
      if (profiler) {
        const file = path.join(os.tmpdir(), `esan-bench-durable-${Date.now()}.cpuprofile`);
        profileText = formatPhaseProfiles(await profiler.stop(file), profiledPhases(results));
        progress(`CPU profile (sampled every ${PROFILE_INTERVAL_US} µs) kept in ${file}`);
      }
    } finally {
      san.close();
    }
    const body = [formatDurableReport(cfg, results), `Total bench time: ${formatMs(performance.now() - started)} (not counting removal of the data directory).`].join("\n\n");
    process.stdout.write(`${machine.map((m) => `- ${m}`).join("\n")}\n\n${body}\n`);
    if (profileText) process.stdout.write(`\n### Where the main thread spent each phase (--profile; sampled every ${PROFILE_INTERVAL_US} µs)\n\n${profileText}\n`);
    if (cfg.append) {
      const file = path.join(import.meta.dirname, "..", "BENCHMARKS.md");
      appendBenchmarkSection(file, COMMAND, machine, body);
      progress(`appended to ${file}`);
    } else {
      progress(`not appended to BENCHMARKS.md (${cfg.quick ? "--quick" : cfg.profile ? "--profile" : "--no-append"}); appended figures come from full runs`);
    }
  } finally {
    progress(`removing ${tmpRoot} …`);
    const removeMs = timeMs(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
    progress(`removed ${tmpRoot} in ${formatMs(removeMs)}`);
  }
}

await main();
