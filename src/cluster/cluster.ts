// startCluster: a whole local Kubernetes cluster with esan, as supervised processes on loopback (`npm run up` and the
// e2e tests). stop() unpublishes and unstages what the node plugin holds, stops every process it started (last first)
// and sweeps any mount, loop device, FUSE mount or nbdfuse process left under the cluster's directory.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startControlPlane, type ControlPlane } from "./control-plane.ts";
import { CsiClient } from "./csi-client.ts";
import { startCsiStack, type CsiStack, type SanOptions } from "./csi-stack.ts";
import type { KubeClient } from "./kube-client.ts";
import type { Kubectl } from "./kubectl.ts";
import { mountsUnder, sweepNodeLeftovers } from "./node-cleanup.ts";
import { Supervisor, signalGroup, waitFor, type Supervised } from "./supervisor.ts";
import { loadClusterTools, PROJECT_ROOT, type ClusterTools } from "./tools.ts";

/** Options of startCluster; every one has a default. */
export interface ClusterOptions {
  /** Directory of all the cluster's state and logs; emptied first. Default: a new directory under the OS temp dir. */
  root?: string;
  /** Where the admin kubeconfig goes (default ROOT/kubeconfig). */
  kubeconfig?: string;
  /** The SAN's capacity and limits (default 20 GiB and the engine's limits). */
  san?: SanOptions;
  /** The one node's name, also esan's node id (default `esan-node`). */
  nodeName?: string;
  /** Namespace of the chart's release (default `esan-system`) and release name (default `esan`). */
  namespace?: string;
  release?: string;
  /** The chart (default deploy/helm/esan) and the examples whose classes are applied (default examples/). */
  chartDir?: string;
  examplesDir?: string;
  /** Lifetime of the components' ServiceAccount tokens (default 24h). */
  tokenDuration?: string;
  /** Longest retry back-off of csi-provisioner and csi-snapshotter (default 5m, theirs). */
  retryIntervalMax?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Hears of a process that ended while the cluster ran. */
  onProcessExit?: (process: Supervised) => void;
}

/** A running cluster. */
export interface Cluster {
  root: string;
  /** The admin kubeconfig. */
  kubeconfig: string;
  server: string;
  nodeName: string;
  namespace: string;
  /** Where the tests, playing kubelet, stage and publish (ROOT/kubelet). */
  kubeletDir: string;
  tools: ClusterTools;
  controlPlane: ControlPlane;
  csi: CsiStack;
  admin: KubeClient;
  kubectl: Kubectl;
  /** Every process it runs. */
  processes: () => Supervised[];
  /** Processes that ended while the cluster ran, one phrase each. */
  exits: () => string[];
  /**
   * Unpublishes and unstages what the node holds, stops every process, and resolves what the sweep after that still
   * had to remove (empty when the graceful path released everything).
   */
  stop: () => Promise<string[]>;
}

const PID_FILE = "pids.json";
/** Marks a directory as a cluster's, so that only such a directory (or an empty one) is ever emptied. */
const MARKER_FILE = ".esan-cluster";

/** Starts the cluster; on failure stops whatever it had started and rethrows. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const log = options.log ?? (() => {});
  const root = options.root ?? fs.mkdtempSync(path.join(os.tmpdir(), "esan-cluster-"));
  await clearStaleRun(root, log);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, MARKER_FILE), "A local esan cluster (src/cluster): emptied by the next start.\n");
  const socketDir = shortSocketDir(root);
  const tools = loadClusterTools();
  const exits: string[] = [];
  let stopping = false;
  const supervisor = new Supervisor(path.join(root, "logs"), (process) => {
    if (stopping) return;
    exits.push(`${process.name} ${process.exitStatus() ?? "ended"} (log: ${process.logFile})`);
    options.onProcessExit?.(process);
  });
  const recordPids = () => fs.writeFileSync(path.join(root, PID_FILE), JSON.stringify(supervisor.processes.map((p) => ({ name: p.name, pid: p.pid }))));
  const recorder = setInterval(recordPids, 500);
  const kubeletDir = path.join(root, "kubelet");
  fs.mkdirSync(kubeletDir, { recursive: true });
  const nodeName = options.nodeName ?? "esan-node";
  const namespace = options.namespace ?? "esan-system";
  let controlPlane: ControlPlane | undefined;
  let csi: CsiStack | undefined;

  let stopped: Promise<string[]> | undefined;
  const stop = () => (stopped ??= stopAll());
  const stopAll = async (): Promise<string[]> => {
    stopping = true;
    clearInterval(recorder);
    if (csi) await releaseNodeVolumes(csi, kubeletDir, log);
    await supervisor.stopAll();
    controlPlane?.admin.close();
    const swept = await sweepNodeLeftovers(root);
    if (swept.length > 0) log(`removed what the node plugin left: ${swept.join(", ")}`);
    if (socketDir !== path.join(root, "sockets")) fs.rmSync(socketDir, { recursive: true, force: true });
    fs.rmSync(path.join(root, PID_FILE), { force: true });
    return swept;
  };

  try {
    log(`starting the local cluster in ${root}`);
    controlPlane = await startControlPlane({
      root,
      tools,
      supervisor,
      log,
      tokenDuration: options.tokenDuration ?? "24h",
      adminKubeconfig: options.kubeconfig ?? path.join(root, "kubeconfig"),
    });
    recordPids();
    csi = await startCsiStack({
      root,
      socketDir,
      tools,
      supervisor,
      controlPlane,
      log,
      tokenDuration: options.tokenDuration ?? "24h",
      nodeName,
      namespace,
      release: options.release ?? "esan",
      chartDir: options.chartDir ?? path.join(PROJECT_ROOT, "deploy", "helm", "esan"),
      examplesDir: options.examplesDir ?? path.join(PROJECT_ROOT, "examples"),
      san: options.san ?? {},
      retryIntervalMax: options.retryIntervalMax ?? "5m",
    });
    recordPids();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    root,
    kubeconfig: controlPlane.adminKubeconfig,
    server: controlPlane.server,
    nodeName,
    namespace,
    kubeletDir,
    tools,
    controlPlane,
    csi,
    admin: controlPlane.admin,
    kubectl: controlPlane.kubectl,
    processes: () => supervisor.processes,
    exits: () => [...exits],
    stop,
  };
}

/**
 * What kubelet does when a node drains: NodeUnpublishVolume for every publication under the kubelet directory, then
 * NodeUnstageVolume for every staging the node plugin recorded. Failures are logged; the sweep after stop removes
 * what they left.
 */
async function releaseNodeVolumes(csi: CsiStack, kubeletDir: string, log: (line: string) => void): Promise<void> {
  const records = stagingRecords(csi.nodeStateDir);
  if (records.length === 0) return;
  const client = new CsiClient(csi.nodeEndpoint);
  try {
    const stagingPaths = new Set(records.map((r) => r.stagingTargetPath));
    for (const mount of mountsUnder(kubeletDir).filter((m) => !stagingPaths.has(m.mountPoint) && !m.fsType.startsWith("fuse"))) {
      for (const record of records) {
        try {
          await client.call("Node", "NodeUnpublishVolume", { volumeId: record.volumeId, targetPath: mount.mountPoint }, 60_000);
          if (!mountsUnder(mount.mountPoint).some((m) => m.mountPoint === mount.mountPoint)) break;
        } catch {
          // Not this volume's publication; try the next.
        }
      }
    }
    for (const record of records) {
      try {
        await client.call("Node", "NodeUnstageVolume", { volumeId: record.volumeId, stagingTargetPath: record.stagingTargetPath }, 60_000);
      } catch (error) {
        log(`NodeUnstageVolume ${record.volumeId} failed while stopping: ${(error as Error).message}`);
      }
    }
  } finally {
    client.close();
  }
}

/** The node plugin's staging records (STATE_DIR/volumes/<hash>/staging.json). */
export function stagingRecords(stateDir: string): { volumeId: string; stagingTargetPath: string }[] {
  const volumesDir = path.join(stateDir, "volumes");
  if (!fs.existsSync(volumesDir)) return [];
  const records: { volumeId: string; stagingTargetPath: string }[] = [];
  for (const entry of fs.readdirSync(volumesDir)) {
    try {
      records.push(JSON.parse(fs.readFileSync(path.join(volumesDir, entry, "staging.json"), "utf8")) as { volumeId: string; stagingTargetPath: string });
    } catch {
      // Being written or removed.
    }
  }
  return records;
}

/**
 * A previous run in `root` that was killed (SIGKILL leaves its process groups and the node's mounts behind): kill the
 * groups it recorded, sweep the node leftovers, and empty the directory. Refuses a non-empty directory that is not a
 * cluster's.
 */
async function clearStaleRun(root: string, log: (line: string) => void): Promise<void> {
  if (!fs.existsSync(root)) return;
  if (fs.readdirSync(root).length > 0 && !fs.existsSync(path.join(root, MARKER_FILE))) {
    throw new Error(`${root} is not empty and holds no earlier local cluster (no ${MARKER_FILE}); name an empty or new directory for the cluster.`);
  }
  try {
    const recorded = JSON.parse(fs.readFileSync(path.join(root, PID_FILE), "utf8")) as { name: string; pid: number }[];
    const killed = recorded.filter(({ pid }) => isOurs(pid, root));
    for (const { name, pid } of killed) {
      log(`stopping ${name} (pid ${pid}) left by an earlier run`);
      signalGroup(pid, "SIGKILL");
    }
    await waitFor(() => killed.every(({ pid }) => !fs.existsSync(`/proc/${pid}`)), 30_000, () => `Processes of an earlier run in ${root} did not end after SIGKILL.`);
  } catch {
    // No earlier run recorded.
  }
  const swept = await sweepNodeLeftovers(root);
  if (swept.length > 0) log(`removed what an earlier run left: ${swept.join(", ")}`);
  fs.rmSync(root, { recursive: true, force: true });
}

/** Whether `pid` is still a process of a cluster in `root` (its command line names the directory). */
function isOurs(pid: number, root: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(root);
  } catch {
    return false;
  }
}

/** ROOT/sockets, or a directory under /tmp when ROOT is too deep for unix socket paths (108 bytes). */
function shortSocketDir(root: string): string {
  const preferred = path.join(root, "sockets");
  if (Buffer.byteLength(path.join(preferred, "csi-controller.sock")) < 100) {
    fs.mkdirSync(preferred, { recursive: true });
    return preferred;
  }
  return fs.mkdtempSync(path.join(os.tmpdir(), "esan-sock-"));
}
