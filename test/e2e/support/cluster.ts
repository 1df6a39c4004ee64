// The e2e suites' cluster: startCluster (src/cluster) in a fresh directory, after checking every prerequisite (a
// missing one fails the suite with a sentence, never a skip), and a stop that also proves nothing was left behind.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startCluster, type Cluster, type ClusterOptions } from "../../../src/cluster/cluster.ts";
import { leftoversUnder } from "../../../src/cluster/node-cleanup.ts";
import { loadClusterTools } from "../../../src/cluster/tools.ts";
import { missingNodePrerequisites, requirePrerequisites } from "../../support/csi-node-env.ts";

export type { Cluster };

/** Starts a cluster for one test file; its progress goes to ROOT/progress.log. */
export async function startE2eCluster(name: string, options: Omit<ClusterOptions, "root" | "log"> = {}): Promise<Cluster> {
  requirePrerequisites(await missingNodePrerequisites(), "The Kubernetes end-to-end tests");
  loadClusterTools();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `esan-e2e-${name}-`));
  const progress = path.join(root, "progress.log");
  const started = Date.now();
  return await startCluster({
    root,
    nodeName: `esan-${name}`,
    ...options,
    log: (line) => fs.appendFileSync(progress, `${((Date.now() - started) / 1000).toFixed(1)}s ${line}\n`),
  });
}

/** What stopping a cluster found. */
export interface StopReport {
  /** Processes that had ended before stop, one phrase each. */
  exits: string[];
  /** What the sweep after the graceful unpublish/unstage still had to remove. */
  swept: string[];
  /** Mounts, loop devices, FUSE mounts and nbdfuse processes still under the directory after stop. */
  left: string[];
}

/**
 * Stops the cluster and reports what it found, so a test can require all three lists to be empty. Removes the
 * directory when the host is clean (ESAN_E2E_KEEP=1 keeps it, logs included).
 */
export async function stopE2eCluster(cluster: Cluster | undefined): Promise<StopReport> {
  if (!cluster) return { exits: [], swept: [], left: [] };
  const exits = cluster.exits();
  const swept = await cluster.stop();
  const left = leftoversUnder(cluster.root);
  if (left.length === 0 && process.env.ESAN_E2E_KEEP !== "1") fs.rmSync(cluster.root, { recursive: true, force: true });
  return { exits, swept, left };
}
