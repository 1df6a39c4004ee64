// Recognising a process the plugin started in an earlier life: a pid alone can be reused, so we keep the pid with
// its start time (/proc/PID/stat field 22) and treat a zombie as gone (an orphan's new parent may never reap it).
import fs from "node:fs";

/** A process as /proc shows it: its state letter and start time in clock ticks since boot. */
export interface ProcessStat {
  state: string;
  startTime: number;
}

/** Parses the text of /proc/PID/stat; the command name may itself contain spaces and parentheses. */
export function parseProcStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trim().split(" ");
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const startTime = Number(fields[19]);
  if (!fields[0] || !Number.isFinite(startTime)) return undefined;
  return { state: fields[0], startTime };
}

/** /proc/PID/stat of a process, or undefined when there is none. */
export function readProcStat(pid: number): ProcessStat | undefined {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether `pid` still runs (not a zombie) and is the very process that started at `startTime`. */
export function isSameProcessAlive(pid: number, startTime: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== "Z" && stat.state !== "X";
}

/** Sends `signal` to the process group led by `pid` (our helpers run in sessions of their own); ignores a group already gone. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
