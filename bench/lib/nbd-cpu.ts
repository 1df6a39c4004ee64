// CPU time of a server process per thread group, from /proc: tells whether Node's main thread, its thread pool,
// V8's helper threads or none of them is the limit while a workload runs, and how long the main thread sat runnable
// but unscheduled (the machine's other work competing for the cores).

import { execFileSync } from "node:child_process";
import fs from "node:fs";

/** Where a thread's CPU time is counted: the main (JavaScript) thread, libuv's pool, V8's helpers, or the rest. */
export type ThreadGroup = "main" | "pool" | "v8" | "other";

/** CPU seconds per thread group at one moment, plus the main thread's run-queue wait. */
export type CpuSample = Record<ThreadGroup, number> & { mainWaiting: number };

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`, 100 almost everywhere). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** The group of thread `tid` of process `pid`, by its name: libuv's pool is "libuv-worker", V8's are "V8Worker" and the like. */
function groupOf(pid: number, tid: number, comm: string): ThreadGroup {
  if (tid === pid) return "main";
  if (comm.startsWith("libuv-worker")) return "pool";
  return comm.startsWith("V8") ? "v8" : "other";
}

/** User plus system CPU seconds of a `/proc/.../stat` line, and the thread's name. */
function parseStat(stat: string): { comm: string; seconds: number } {
  const close = stat.lastIndexOf(")");
  // Fields after "pid (comm)": state is field 3, utime field 14 and stime field 15 (proc(5)).
  const fields = stat.slice(close + 2).split(" ");
  return { comm: stat.slice(stat.indexOf("(") + 1, close), seconds: (Number(fields[11]) + Number(fields[12])) / ticksPerSecond() };
}

/**
 * CPU seconds of process `pid` per group; zeroes once the process is gone. The process total includes threads
 * that already ended (nbdkit and qemu-nbd end per-connection threads), so "other" is the total minus the live
 * main, pool and V8 threads. The main thread's run-queue wait comes from schedstat (nanoseconds).
 */
export function sampleCpu(pid: number): CpuSample {
  const sample: CpuSample = { main: 0, pool: 0, v8: 0, other: 0, mainWaiting: 0 };
  let total: number;
  let tids: string[];
  try {
    total = parseStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8")).seconds;
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return sample;
  }
  for (const tid of tids) {
    try {
      const thread = parseStat(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"));
      const group = groupOf(pid, Number(tid), thread.comm);
      if (group !== "other") sample[group] += thread.seconds;
    } catch {
      // The thread ended between listing and reading; the process total still holds its time.
    }
  }
  sample.other = Math.max(0, total - sample.main - sample.pool - sample.v8);
  try {
    sample.mainWaiting = Number(fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e9 || 0;
  } catch {
    // No schedstat (kernel without CONFIG_SCHEDSTATS): the wait column stays at zero.
  }
  return sample;
}

/** CPU use between two samples as a share of the elapsed time (1.0 = one core busy the whole time), per group. */
export type CpuShare = CpuSample & { total: number };

/** The shares of each group between two samples taken `elapsedMs` apart. */
export function cpuShare(before: CpuSample, after: CpuSample, elapsedMs: number): CpuShare {
  const seconds = elapsedMs / 1000;
  const share = (key: keyof CpuSample): number => Math.max(0, after[key] - before[key]) / seconds;
  const result = { main: share("main"), pool: share("pool"), v8: share("v8"), other: share("other"), mainWaiting: share("mainWaiting") };
  return { ...result, total: result.main + result.pool + result.v8 + result.other };
}
