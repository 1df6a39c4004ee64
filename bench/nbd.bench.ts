// `npm run bench:nbd`: esan's NBD data plane against nbdkit (file plugin, raw file) and qemu-nbd (qcow2 with an
// internal snapshot), side by side in one run over unix sockets, with real clients: nbdcopy for 1 GiB sequential
// copies and fio's nbd engine for 4 KiB random I/O at queue depth 1 and 32, then the writes again right after a
// snapshot. Prints markdown with esan/peer ratios and appends it to BENCHMARKS.md.
//
// Flags: --quick (256 MiB exports, 3 s fio runs; never appended), --no-append (print only), --runtime=SECONDS
// (fio run length; never appended), --peers-only (nbdkit and qemu-nbd only; never appended), --profile (esan only,
// under `node --cpu-prof`; prints where its main thread spends each workload; never appended).

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { type NbdBenchConfig, parseNbdBenchConfig, progress, REPO_ROOT, runCommand } from "./lib/nbd-common.ts";
import { stopAllServers, stopServersOnSignals } from "./lib/nbd-process.ts";
import { formatProfiles, loadLargestProfile, summarizeWindows } from "./lib/nbd-profile.ts";
import { cpuTable, latencyTable, targetSummary, throughputTable } from "./lib/nbd-report.ts";
import { runAllWorkloads } from "./lib/nbd-run.ts";
import { type BenchServer, type ServerPlace, startEsan, startNbdkitFile, startQemuNbd } from "./lib/nbd-servers.ts";
import { WORKLOADS, workloadCommand, type WorkloadContext } from "./lib/nbd-workloads.ts";
import { appendBenchmarkSection, describeMachine } from "./lib/report.ts";
import { formatBytes, formatMs } from "./lib/table.ts";
import { MiB } from "./lib/storage-common.ts";

const COMMAND = "npm run bench:nbd";
const TOOLS = ["nbdcopy", "nbdinfo", "fio", "nbdkit", "qemu-nbd", "qemu-img"];

/** Fails with one sentence naming every missing client or peer server. */
async function checkTools(cfg: NbdBenchConfig): Promise<void> {
  const needed = cfg.servers.peers ? TOOLS : TOOLS.filter((t) => !t.startsWith("qemu") && t !== "nbdkit");
  const missing: string[] = [];
  for (const tool of needed) if ((await runCommand("sh", ["-c", `command -v ${tool}`])).code !== 0) missing.push(tool);
  if (missing.length > 0) throw new Error(`bench:nbd needs ${missing.join(", ")} on PATH; run \`bash scripts/setup\` (Debian packages libnbd-bin, fio, nbdkit, qemu-utils).`);
}

/** A file of `bytes` random bytes (incompressible, no zero blocks a client or server could skip). */
function writeDataFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, "w");
  try {
    const block = Buffer.alloc(16 * MiB);
    for (let offset = 0; offset < bytes; offset += block.length) {
      crypto.randomFillSync(block);
      fs.writeSync(fd, block, 0, Math.min(block.length, bytes - offset), offset);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Starts the servers this run compares, each in its own directory with its own copy of the data. */
async function startServers(cfg: NbdBenchConfig, root: string, dataFile: string, profileDir: string): Promise<BenchServer[]> {
  const place = (name: string): ServerPlace => {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    return { dir, sizeBytes: cfg.volumeBytes, dataFile };
  };
  const servers: BenchServer[] = [];
  if (cfg.servers.esan) servers.push(await startEsan(place("esan"), cfg.profile ? { profileDir } : {}));
  if (cfg.servers.peers) {
    servers.push(await startNbdkitFile(place("nbdkit")));
    servers.push(await startQemuNbd(place("qemu")));
  }
  for (const s of servers) progress(`${s.label} serving ${s.uri} (pid ${s.pid()})`);
  return servers;
}

function describeMethod(cfg: NbdBenchConfig, servers: readonly BenchServer[], ctx: WorkloadContext, root: string, argv: readonly string[]): string {
  const size = formatBytes(cfg.volumeBytes);
  const lines = [
    `Every server serves one ${size} export over a unix socket on this machine; the clients run here too, so server and client share the ${os.availableParallelism()} cores. ` +
      `Each row runs in ${cfg.rounds} rounds on every server before the next row starts, the order of the servers rotating from round to round, and each figure is the server's median round ` +
      `(the "max/min" column shows how far its rounds spread), so a burst of other work on the machine costs one round rather than one server. ` +
      `Before the first row, nbdkit's raw file and qemu-nbd's qcow2 already hold ${size} of random data (qemu-img convert; qcow2 internal snapshot s1 taken after it, 64 KiB clusters), ` +
      `while esan's volume is fresh: "seq write, first pass" allocates every esan chunk and copies every qcow2 cluster away from s1, and writes over nbdkit's preallocated blocks. ` +
      `Sequential rows time one \`nbdcopy\` of ${size} (writes with \`--flush\`, so they end durable); random rows are fio's nbd engine for ${cfg.fioSeconds} s per round (${cfg.rounds * cfg.fioSeconds} s per server in all), time based, over the whole export. ` +
      `"after snapshot" rows first replace the snapshot with a new one, in every round, on each server that has them, so each holds exactly one (esan: \`snapshot delete\` and \`snapshot create\` through the SAN API, CLI \`--san\`; qemu-nbd: stopped, \`qemu-img snapshot -d\` and \`-c\`, restarted), ` +
      `so the run starts with every chunk shared and takes the copy-on-write path until a chunk has been written once (esan 64 KiB chunks, qcow2 64 KiB clusters). ` +
      `nbdkit's file plugin has no snapshots, so its "after snapshot" rows are plain overwrites of the same raw file; the esan/nbdkit ratio there compares esan's copy-on-write path with a peer that has none.`,
    "",
    "Commands:",
    "",
    `- bench: \`${[COMMAND, ...argv].join(" ")}\`; \`DIR\` below is its temporary directory on the real disk (${os.tmpdir()})`,
    ...servers.map((s) => `- ${s.label}, URI \`${s.uri.replaceAll(root, "DIR")}\`: ${s.commands().map((c) => `\`${c.replaceAll(root, "DIR")}\``).join("; ")}`),
    ...[...new Set(WORKLOADS.map((w) => workloadCommand(w, ctx).replace(/--iodepth=\d+/, "--iodepth=1|32")))].map((c) => `- client: \`${c}\``),
  ];
  return lines.join("\n");
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const cfg = parseNbdBenchConfig(argv);
  stopServersOnSignals();
  await checkTools(cfg);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "esan-nbd-bench-"));
  const machine = describeMachine(root);
  const started = performance.now();
  const profileDir = path.join(root, "profile");
  try {
    const scratchDir = path.join(root, "scratch");
    fs.mkdirSync(scratchDir);
    const ctx: WorkloadContext = { dataFile: path.join(root, "data.raw"), sizeBytes: cfg.volumeBytes, fioSeconds: cfg.fioSeconds, scratchDir };
    progress(`writing ${formatBytes(cfg.volumeBytes)} of random data to ${ctx.dataFile}`);
    writeDataFile(ctx.dataFile, cfg.volumeBytes);
    const servers = await startServers(cfg, root, ctx.dataFile, profileDir);
    const { results, esanWindows } = await runAllWorkloads(servers, WORKLOADS, ctx, cfg.rounds);
    await stopAllServers();
    const sections = [
      "### NBD data plane against nbdkit and qemu-nbd",
      "",
      describeMethod(cfg, servers, ctx, root, argv),
      "",
      throughputTable(WORKLOADS, results),
      "",
      "Targets (esan/peer throughput; \"after snapshot\" rows compare esan's copy-on-write writes with nbdkit overwriting a raw file that has no snapshot, and with qemu-nbd's qcow2 right after a new internal snapshot):",
      "",
      targetSummary(WORKLOADS, results),
      "",
      "Server CPU while each workload ran, as a share of one core (esan's main thread runs the NBD protocol and the engine; its file I/O is synchronous except reads of 64 KiB or more, which copy their data on libuv's thread pool; \"waiting for a core\" is time the main thread was runnable but not running, from /proc schedstat: the clients and the machine's other work compete for the cores):",
      "",
      cpuTable(WORKLOADS, results),
      "",
      "fio completion latency:",
      "",
      latencyTable(WORKLOADS, results),
    ];
    if (cfg.profile) sections.push("", formatProfiles(summarizeWindows(loadLargestProfile(profileDir), esanWindows)));
    sections.push("", `Total bench time: ${formatMs(performance.now() - started)}.`);
    const body = sections.join("\n");
    process.stdout.write(`${machine.map((m) => `- ${m}`).join("\n")}\n\n${body}\n`);
    if (cfg.append) {
      const file = path.join(REPO_ROOT, "BENCHMARKS.md");
      appendBenchmarkSection(file, COMMAND, machine, body);
      progress(`appended to ${file}`);
    } else {
      progress("not appended to BENCHMARKS.md (--quick, --no-append, --runtime, --peers-only or --profile); appended figures come from full runs");
    }
  } finally {
    await stopAllServers();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench:nbd] failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
