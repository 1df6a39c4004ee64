// Machine description and the append-only BENCHMARKS.md log that every bench command writes to.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

const BENCHMARKS_HEADER = `# esan benchmarks

Timing claims about esan live here, never in tests. Each section below was appended by a benchmark
command, which is named under the section's dated heading together with the machine it ran on;
re-running the command appends a new section rather than editing an old one. Every ratio compares
two measurements taken in the same run on the same disk (esan against a plain file, or one size
against another), so the figures of one section are comparable with each other.
`;

/** One line per fact about the machine a benchmark ran on: CPUs, memory, Node, kernel and the filesystem of `dir`. */
export function describeMachine(dir: string): string[] {
  const cpus = os.cpus();
  return [
    `CPU: ${cpus[0]?.model.trim() ?? "unknown"}, nproc ${os.availableParallelism()}`,
    `Memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `Node: ${process.version} on ${os.type()} ${os.release()} (${process.arch})`,
    `Load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(", ")} (1, 5, 15 min; other work on the machine adds noise)`,
    `Data directory: ${dir} on ${describeFilesystem(dir)}`,
  ];
}

/** The filesystem type and device that hold `dir`, from `df -T`; "unknown filesystem" when df is missing. */
export function describeFilesystem(dir: string): string {
  try {
    const lines = execFileSync("df", ["-T", dir], { encoding: "utf8" }).trim().split("\n");
    const fields = (lines[lines.length - 1] ?? "").split(/\s+/);
    return `${fields[1] ?? "?"} (${fields[0] ?? "?"}, mounted on ${fields[fields.length - 1] ?? "?"}; \`df -T\`)`;
  } catch {
    return "unknown filesystem (df -T failed)";
  }
}

/** Creates `file` with the explanatory header when it does not exist yet; an existing file is left alone. */
export function ensureBenchmarksFile(file: string): void {
  if (!fs.existsSync(file)) fs.writeFileSync(file, BENCHMARKS_HEADER);
}

/** Appends `body` under a heading dated now to `file`, creating the file with its explanatory header first. */
export function appendBenchmarkSection(file: string, command: string, machine: readonly string[], body: string, now = new Date()): void {
  ensureBenchmarksFile(file);
  const stamp = now.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  const section = [`## ${stamp} — \`${command}\``, "", ...machine.map((m) => `- ${m}`), "", body.trim(), ""].join("\n");
  const existing = fs.readFileSync(file, "utf8");
  fs.appendFileSync(file, `${existing.endsWith("\n\n") ? "" : existing.endsWith("\n") ? "\n" : "\n\n"}${section}`);
}
