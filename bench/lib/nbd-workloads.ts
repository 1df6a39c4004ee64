// The workloads of `npm run bench:nbd`, driven by real NBD clients: nbdcopy for sequential 1 GiB copies and fio's
// nbd engine for 4 KiB random I/O, each measured with the server's CPU use per thread group.

import fs from "node:fs";
import path from "node:path";

import { runChecked } from "./nbd-common.ts";
import { type CpuShare, cpuShare, sampleCpu } from "./nbd-cpu.ts";
import type { BenchServer } from "./nbd-servers.ts";
import { MiB } from "./storage-common.ts";

/** One row of the report. */
export interface Workload {
  id: string;
  label: string;
  kind: "seq-write" | "seq-read" | "fio";
  rw?: "randread" | "randwrite";
  iodepth?: number;
  /** Take a new snapshot on each server right before the run, so the writes take the copy-on-write path. */
  cow: boolean;
  /** Which target applies: sequential ≥ 1.0× nbdkit file, random ≥ 0.8×. */
  target: "sequential" | "random";
  /** Runs in one round only (the first write to a fresh export cannot be repeated). */
  once?: boolean;
}

/** The rows, in the order they run; every workload runs on every server before the next one starts. */
export const WORKLOADS: readonly Workload[] = [
  { id: "seq-write-first", label: "seq write, first pass", kind: "seq-write", cow: false, target: "sequential", once: true },
  { id: "seq-write", label: "seq write, overwrite", kind: "seq-write", cow: false, target: "sequential" },
  { id: "seq-read", label: "seq read", kind: "seq-read", cow: false, target: "sequential" },
  { id: "randread-1", label: "4 KiB randread QD1", kind: "fio", rw: "randread", iodepth: 1, cow: false, target: "random" },
  { id: "randread-32", label: "4 KiB randread QD32", kind: "fio", rw: "randread", iodepth: 32, cow: false, target: "random" },
  { id: "randwrite-1", label: "4 KiB randwrite QD1", kind: "fio", rw: "randwrite", iodepth: 1, cow: false, target: "random" },
  { id: "randwrite-32", label: "4 KiB randwrite QD32", kind: "fio", rw: "randwrite", iodepth: 32, cow: false, target: "random" },
  { id: "cow-seq-write", label: "seq write after snapshot", kind: "seq-write", cow: true, target: "sequential" },
  { id: "cow-randwrite-1", label: "4 KiB randwrite QD1 after snapshot", kind: "fio", rw: "randwrite", iodepth: 1, cow: true, target: "random" },
  { id: "cow-randwrite-32", label: "4 KiB randwrite QD32 after snapshot", kind: "fio", rw: "randwrite", iodepth: 32, cow: true, target: "random" },
];

/** What one workload measured on one server. */
export interface Measurement {
  /** MiB/s for sequential rows, IOPS for fio rows. */
  value: number;
  unit: "MiB/s" | "IOPS";
  elapsedMs: number;
  /** fio completion latency percentiles, in microseconds. */
  p50Us?: number;
  p99Us?: number;
  /** Server CPU as a share of one core, per thread group. */
  cpu: CpuShare;
  /** The value of every round (the measurement itself is the median round's). */
  roundValues: number[];
  /** Monotonic clock (µs, the clock of V8's CPU profiles) at the start and end of the run. */
  startUs: number;
  endUs: number;
}

/** What the workloads need to know about the run. */
export interface WorkloadContext {
  dataFile: string;
  sizeBytes: number;
  fioSeconds: number;
  scratchDir: string;
}

/** The client command of a workload, with URI and paths as placeholders, for the report. */
export function workloadCommand(workload: Workload, ctx: Pick<WorkloadContext, "fioSeconds" | "sizeBytes">): string {
  return clientArgs(workload, { ...ctx, dataFile: "DATA.raw", scratchDir: "." }, "URI").join(" ");
}

function clientArgs(workload: Workload, ctx: WorkloadContext, uri: string, jsonFile = "OUT.json"): string[] {
  switch (workload.kind) {
    case "seq-write":
      // --flush: the copy counts only when the data is durable, as every server must fsync for it.
      return ["nbdcopy", "--flush", ctx.dataFile, uri];
    case "seq-read":
      return ["nbdcopy", uri, "null:"];
    case "fio":
      return [
        "fio", "--name=bench", "--ioengine=nbd", `--uri=${uri}`, `--rw=${workload.rw}`, "--bs=4k", `--iodepth=${workload.iodepth}`,
        `--runtime=${ctx.fioSeconds}`, "--time_based", `--size=${ctx.sizeBytes}`, "--output-format=json", `--output=${jsonFile}`,
      ];
  }
}

/** The parts of fio's JSON report the bench reads. */
interface FioDirection {
  iops: number;
  clat_ns?: { percentile?: Record<string, number> };
}
interface FioReport {
  jobs: { error: number; read: FioDirection; write: FioDirection }[];
}

/** Runs `workload` against `server` once and measures it. */
export async function runWorkload(server: BenchServer, workload: Workload, ctx: WorkloadContext): Promise<Measurement> {
  const jsonFile = path.join(ctx.scratchDir, `fio-${server.key}-${workload.id}.json`);
  const [command, ...args] = clientArgs(workload, ctx, server.uri, jsonFile);
  const pid = server.pid();
  const before = sampleCpu(pid);
  const startUs = Number(process.hrtime.bigint() / 1000n);
  const result = await runChecked(command ?? "", args);
  const endUs = Number(process.hrtime.bigint() / 1000n);
  const cpu = cpuShare(before, sampleCpu(pid), result.elapsedMs);
  if (workload.kind !== "fio") {
    const value = ctx.sizeBytes / MiB / (result.elapsedMs / 1000);
    return { value, unit: "MiB/s", elapsedMs: result.elapsedMs, cpu, roundValues: [value], startUs, endUs };
  }
  const text = fs.readFileSync(jsonFile, "utf8");
  // fio's nbd engine prints "fio: connected to NBD server" ahead of the JSON in some versions.
  const report = JSON.parse(text.slice(text.indexOf("{"))) as FioReport;
  const job = report.jobs[0];
  if (!job || job.error !== 0) throw new Error(`fio against ${server.label} reported error ${job?.error} for ${workload.label}.`);
  const direction = workload.rw === "randread" ? job.read : job.write;
  const percentile = direction.clat_ns?.percentile ?? {};
  const us = (key: string): number | undefined => (percentile[key] === undefined ? undefined : (percentile[key] ?? 0) / 1000);
  const value = direction.iops;
  return { value, unit: "IOPS", elapsedMs: result.elapsedMs, p50Us: us("50.000000"), p99Us: us("99.000000"), cpu, roundValues: [value], startUs, endUs };
}
