// `--profile` of `npm run bench:durable`: V8's CPU profiler (the one `node --cpu-prof` starts) over the whole run,
// and where the main thread spent each measured phase, per run of the phase.

import fs from "node:fs";
import { Session } from "node:inspector/promises";

import type { Span } from "./durable-common.ts";
import { summarizeWindows, type WindowProfile } from "./nbd-profile.ts";
import { formatNumber, markdownTable } from "./table.ts";

type CpuProfile = Parameters<typeof summarizeWindows>[0];

/** One measured phase: a label and the spans of its runs (a restore, an export). */
export interface ProfiledPhase {
  label: string;
  spans: readonly Span[];
}

/** The CPU profiler of this process, sampling every `intervalUs` from `start` until `stop`. */
export class RunProfiler {
  readonly #session: Session;

  private constructor(session: Session) {
    this.#session = session;
  }

  static async start(intervalUs: number): Promise<RunProfiler> {
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
    await session.post("Profiler.start");
    return new RunProfiler(session);
  }

  /** Stops sampling and writes the profile to `file` (a `.cpuprofile` that Chrome DevTools opens). */
  async stop(file: string): Promise<CpuProfile> {
    const { profile } = await this.#session.post("Profiler.stop");
    this.#session.disconnect();
    fs.writeFileSync(file, JSON.stringify(profile));
    return { ...profile, samples: profile.samples ?? [], timeDeltas: profile.timeDeltas ?? [] };
  }
}

const perRunMs = (us: number, runs: number): string => `${formatNumber(us / 1000 / runs, 2)} ms`;
const share = (part: number, total: number): string => (total > 0 ? `${((100 * part) / total).toFixed(1)}%` : "—");

/** Markdown: per phase, wall time against sampled time per run, the categories, then the top functions. */
export function formatPhaseProfiles(profile: CpuProfile, phases: readonly ProfiledPhase[], topFunctions = 12): string {
  const windows = phases.flatMap((p) => p.spans.map((s) => ({ label: p.label, startUs: s.startUs, endUs: s.endUs })));
  const summaries = new Map<string, WindowProfile>(summarizeWindows(profile, windows).map((w) => [w.label, w]));
  const parts: string[] = [];
  for (const phase of phases) {
    const summary = summaries.get(phase.label);
    if (!summary) continue;
    const runs = phase.spans.length;
    const wallUs = phase.spans.reduce((sum, s) => sum + s.endUs - s.startUs, 0);
    const categories = [...summary.byCategory.entries()].sort((a, b) => b[1] - a[1]);
    const functions = [...summary.byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, topFunctions);
    parts.push(
      `#### ${phase.label}: ${perRunMs(wallUs, runs)} wall per run, ${perRunMs(summary.totalUs, runs)} sampled (${runs} run${runs === 1 ? "" : "s"})`,
      "",
      markdownTable(["category", "per run", "share"], categories.map(([name, us]) => [name, perRunMs(us, runs), share(us, summary.totalUs)]), ["left"]),
      "",
      markdownTable(["function (self time)", "per run", "share"], functions.map(([name, us]) => [name, perRunMs(us, runs), share(us, summary.totalUs)]), ["left"]),
      "",
    );
  }
  return parts.join("\n").trim();
}
