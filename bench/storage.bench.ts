// `npm run bench:storage`: snapshot and clone latency against volume size, diff time against the amount changed,
// and write throughput against a plain preallocated file. Prints markdown tables and appends them to BENCHMARKS.md.
//
// Flags: --quick (small iteration counts for smoke runs; never appended), --no-append (print only),
// --only=snapshot,diff,write (run a subset; never appended, so every appended section is complete).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { benchDiff } from "./lib/diff-scaling.ts";
import { appendBenchmarkSection, describeMachine } from "./lib/report.ts";
import { benchSnapshotClone } from "./lib/snapshot-latency.ts";
import { type BenchConfig, GiB, KiB, MiB, progress, SECTION_NAMES, type SectionName, timeMs } from "./lib/storage-common.ts";
import { formatMs } from "./lib/table.ts";
import { benchWrites } from "./lib/write-throughput.ts";

const COMMAND = "npm run bench:storage";

/** Turns the flags into iteration counts; without flags, the full run whose figures get appended. */
function parseConfig(argv: readonly string[]): BenchConfig {
  const quick = argv.includes("--quick");
  const only = argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
  const sections = new Set<SectionName>();
  for (const name of only ? only.split(",") : SECTION_NAMES) {
    if (!(SECTION_NAMES as readonly string[]).includes(name)) throw new Error(`Unknown section "${name}" in --only; use ${SECTION_NAMES.join(",")}.`);
    sections.add(name as SectionName);
  }
  return {
    quick,
    append: !quick && !only && !argv.includes("--no-append"),
    sections,
    snapshotIterations: quick ? 10 : 50,
    warmupIterations: 3,
    spreadWrites: quick ? 32 : 128,
    diffVolumeBytes: quick ? 4 * GiB : 64 * GiB,
    diffFillFraction: 0.1,
    diffRepetitions: quick ? 3 : 7,
    mappedIterations: quick ? 5 : 20,
    sequentialBytes: quick ? 32 * MiB : 256 * MiB,
    sequentialWriteBytes: 1 * MiB,
    randomWrites: quick ? 4096 : 32768,
    randomWriteBytes: 4 * KiB,
  };
}

function main(): void {
  const cfg = parseConfig(process.argv.slice(2));
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "esan-bench-"));
  const machine = describeMachine(tmpRoot);
  const started = performance.now();
  try {
    const sections: string[] = [];
    const run = (name: SectionName, bench: (dir: string, cfg: BenchConfig) => string): void => {
      if (!cfg.sections.has(name)) return;
      const sectionStart = performance.now();
      sections.push(bench(path.join(tmpRoot, name), cfg));
      progress(`${name} done in ${formatMs(performance.now() - sectionStart)}`);
    };
    run("snapshot", benchSnapshotClone);
    run("diff", benchDiff);
    run("write", benchWrites);
    const body = [...sections, `Total bench time: ${formatMs(performance.now() - started)} (not counting removal of the data directories).`].join("\n\n");
    process.stdout.write(`${machine.map((m) => `- ${m}`).join("\n")}\n\n${body}\n`);
    if (cfg.append) {
      const file = path.join(import.meta.dirname, "..", "BENCHMARKS.md");
      appendBenchmarkSection(file, COMMAND, machine, body);
      progress(`appended to ${file}`);
    } else {
      progress(`not appended to BENCHMARKS.md (${cfg.quick ? "--quick" : "--no-append or --only"}); appended figures come from full runs`);
    }
  } finally {
    // Partial writes leave the extents file sparse and fragmented, which makes this slow on ext4 mounted with discard.
    progress(`removing ${tmpRoot} …`);
    const removeMs = timeMs(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
    progress(`removed ${tmpRoot} in ${formatMs(removeMs)}`);
  }
}

main();
