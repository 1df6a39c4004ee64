// The measuring loop of `npm run bench:nbd`: every row on every server, in rounds with a rotating server order,
// keeping the median round per server.

import { progress } from "./nbd-common.ts";
import type { ProfileWindow } from "./nbd-profile.ts";
import type { Results } from "./nbd-report.ts";
import type { BenchServer, ServerKey } from "./nbd-servers.ts";
import { type Measurement, runWorkload, type Workload, type WorkloadContext } from "./nbd-workloads.ts";

/** The measurement whose value is the median of `rounds` (the lower middle one for an even count), with every round's value. */
export function medianRound(rounds: readonly Measurement[]): Measurement {
  const sorted = [...rounds].sort((a, b) => a.value - b.value);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  if (!median) throw new Error("No rounds were measured.");
  return { ...median, roundValues: rounds.map((r) => r.value) };
}

/** `servers` rotated left by `by`, so each server takes each place in the order once over the rounds. */
function rotate<T>(servers: readonly T[], by: number): T[] {
  const shift = servers.length === 0 ? 0 : by % servers.length;
  return [...servers.slice(shift), ...servers.slice(0, shift)];
}

/** Runs every workload on every server for `rounds` rounds; returns the median rounds and esan's time windows. */
export async function runAllWorkloads(
  servers: readonly BenchServer[],
  workloads: readonly Workload[],
  ctx: WorkloadContext,
  rounds: number,
): Promise<{ results: Results; esanWindows: ProfileWindow[] }> {
  const results: Results = new Map();
  const esanWindows: ProfileWindow[] = [];
  for (const workload of workloads) {
    const measured = new Map<ServerKey, Measurement[]>();
    const roundCount = workload.once ? 1 : rounds;
    for (let round = 0; round < roundCount; round++) {
      for (const server of rotate(servers, round)) {
        if (workload.cow) await server.snapshot(`cow-${workload.id}-${round + 1}`);
        const m = await runWorkload(server, workload, ctx);
        measured.set(server.key, [...(measured.get(server.key) ?? []), m]);
        if (server.key === "esan") esanWindows.push({ label: workload.label, startUs: m.startUs, endUs: m.endUs });
        const figure = m.unit === "MiB/s" ? `${m.value.toFixed(0)} MiB/s` : `${m.value.toFixed(0)} IOPS`;
        progress(`${workload.label.padEnd(36)} round ${round + 1}/${roundCount} ${server.label.padEnd(15)} ${figure.padStart(12)}  server CPU ${(m.cpu.total * 100).toFixed(0)}%`);
      }
    }
    results.set(workload.id, new Map([...measured].map(([key, list]) => [key, medianRound(list)])));
  }
  return { results, esanWindows };
}
