// Where esan's main thread spends its time, from the V8 CPU profile that `node --cpu-prof` writes when the server
// exits: samples are cut into the time windows of the workloads and summed by category and by function.

import fs from "node:fs";
import path from "node:path";

import { markdownTable } from "./table.ts";

/** The parts of a `.cpuprofile` file the summary reads (Chrome DevTools protocol `Profiler.Profile`). */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A named time window on the monotonic clock, in microseconds (the clock of V8's profiles and process.hrtime). */
export interface ProfileWindow {
  label: string;
  startUs: number;
  endUs: number;
}

/** Sampled main-thread time of one window, by category and by function (microseconds). */
export interface WindowProfile {
  label: string;
  totalUs: number;
  byCategory: Map<string, number>;
  byFunction: Map<string, number>;
}

/** The profile with the most samples in `dir` (the main thread's; worker threads write their own files). */
export function loadLargestProfile(dir: string): CpuProfile {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : [];
  const profiles = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as CpuProfile);
  const largest = profiles.sort((a, b) => b.samples.length - a.samples.length)[0];
  if (!largest) throw new Error(`No .cpuprofile in ${dir}: did the esan server exit cleanly on SIGTERM (node --cpu-prof writes at exit)?`);
  return largest;
}

/** The bucket a frame's self time goes to: idle, GC, native code, or the source folder of the JavaScript. */
function categoryOf(functionName: string, url: string): string {
  if (functionName === "(idle)") return "idle (event loop waiting for sockets or the thread pool)";
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "(program)") return "V8 and native code outside JS frames";
  const source = /\/(src\/[a-z]+)\//.exec(url);
  if (source) return `esan ${source[1]}`;
  if (url.startsWith("node:")) return `Node ${url.replace(/^node:(internal\/)?/, "").split("/")[0]}`;
  if (url === "") return "native functions (bindings: syscalls, crypto, buffers)";
  if (url.includes("/node_modules/")) return `npm ${/\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "package"}`;
  return "other JavaScript";
}

function frameName(functionName: string, url: string, lineNumber: number): string {
  if (url === "") return functionName || "(anonymous native)";
  const short = url.replace(/^file:\/\/.*?\/(src|node_modules)\//, "$1/");
  return `${functionName || "(anonymous)"} ${short}:${lineNumber + 1}`;
}

/** Sums the profile's self time within the windows, per label; a sample's time is the gap to the next sample. */
export function summarizeWindows(profile: CpuProfile, windows: readonly ProfileWindow[]): WindowProfile[] {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byLabel = new Map<string, WindowProfile>();
  for (const w of windows) {
    if (!byLabel.has(w.label)) byLabel.set(w.label, { label: w.label, totalUs: 0, byCategory: new Map(), byFunction: new Map() });
  }
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    const durationUs = profile.timeDeltas[i + 1] ?? 0;
    const window = windows.find((w) => at >= w.startUs && at < w.endUs);
    const target = window ? byLabel.get(window.label) : undefined;
    const frame = nodes.get(profile.samples[i] ?? -1);
    if (!target || !frame) continue;
    target.totalUs += durationUs;
    const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + durationUs);
    add(target.byCategory, categoryOf(frame.functionName, frame.url));
    add(target.byFunction, frameName(frame.functionName, frame.url, frame.lineNumber));
  }
  return [...byLabel.values()];
}

const share = (part: number, total: number): string => (total > 0 ? `${((100 * part) / total).toFixed(1)}%` : "—");

/** Markdown: per workload, the share of each category, then the top functions by self time. */
export function formatProfiles(profiles: readonly WindowProfile[], topFunctions = 10): string {
  const categories = [...new Set(profiles.flatMap((p) => [...p.byCategory.keys()]))].sort(
    (a, b) => profiles.reduce((s, p) => s + (p.byCategory.get(b) ?? 0), 0) - profiles.reduce((s, p) => s + (p.byCategory.get(a) ?? 0), 0),
  );
  const categoryRows = categories.map((c) => [c, ...profiles.map((p) => share(p.byCategory.get(c) ?? 0, p.totalUs))]);
  const parts = ["Share of esan's sampled main-thread time per workload:", "", markdownTable(["category", ...profiles.map((p) => p.label)], categoryRows)];
  for (const p of profiles) {
    const top = [...p.byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, topFunctions);
    parts.push("", `Top functions by self time, ${p.label} (${(p.totalUs / 1e6).toFixed(1)} s sampled):`, "");
    parts.push(markdownTable(["function", "self", "share"], top.map(([name, us]) => [name, `${(us / 1000).toFixed(0)} ms`, share(us, p.totalUs)])));
  }
  return parts.join("\n");
}
