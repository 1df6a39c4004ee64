// `npm run up`: starts the local cluster in the foreground, prints one `ready` line, and stops everything it started on
// Ctrl-C or SIGTERM. Only turns flags into ClusterOptions; the lifecycle is startCluster's.
import path from "node:path";
import { Command, Option } from "commander";
import { startCluster, type Cluster } from "./cluster.ts";
import { sweepNodeLeftovers } from "./node-cleanup.ts";
import { signalGroup } from "./supervisor.ts";
import { PROJECT_ROOT } from "./tools.ts";

const say = (line: string) => process.stdout.write(`up: ${line}\n`);

const program = new Command("npm run up --")
  .description("start etcd, kube-apiserver, kube-controller-manager, snapshot-controller, the esan SAN, esan csi and its sidecars on loopback")
  .addOption(new Option("--dir <dir>", "directory of the cluster's state and logs, emptied at start").default(path.join(PROJECT_ROOT, ".esan", "cluster")))
  .addOption(new Option("--kubeconfig <file>", "where to write the admin kubeconfig").default(path.join(PROJECT_ROOT, ".esan", "kubeconfig")))
  .addOption(new Option("--san-capacity <size>", "the SAN's capacity (thin)").default("20GiB"))
  .addOption(new Option("--max-snapshots-per-volume <count>", "the SAN's snapshot count limit per volume (default: the engine's, 200)"))
  .addOption(new Option("--snapshot-rate <count/duration>", "the SAN's snapshot rate cap per volume (default: the engine's, 7/5m)"))
  .addOption(new Option("--node-name <name>", "the one node's name and esan node id").default("esan-node"))
  .addOption(new Option("--chart <dir>", "the Helm chart to install").default(path.join(PROJECT_ROOT, "deploy", "helm", "esan")))
  .addOption(new Option("--examples <dir>", "where the StorageClass and snapshot classes to apply are").default(path.join(PROJECT_ROOT, "examples")))
  .addOption(new Option("--token-duration <duration>", "lifetime of the components' ServiceAccount tokens").default("8760h"))
  .allowExcessArguments(false);
program.parse(process.argv);
const flags = program.opts<{
  dir: string;
  kubeconfig: string;
  sanCapacity: string;
  maxSnapshotsPerVolume?: string;
  snapshotRate?: string;
  nodeName: string;
  chart: string;
  examples: string;
  tokenDuration: string;
}>();

let cluster: Cluster | undefined;
let starting: Promise<unknown> = Promise.resolve();
let signals = 0;
let stopping: Promise<void> | undefined;

async function shutdown(code: number): Promise<never> {
  stopping ??= (async () => {
    say("stopping everything the cluster started");
    // A signal during startup: startCluster finishes its current step (or fails and stops itself) first.
    await starting.catch(() => {});
    await cluster?.stop();
    say("stopped");
  })();
  await stopping;
  process.exit(code);
}

// A bug of ours must not leave the cluster's processes running.
process.on("uncaughtException", (error) => {
  process.stderr.write(`up: unexpected error, stopping: ${error.stack ?? error.message}\n`);
  void shutdown(1);
});

// If whatever started us (npm, a shell) dies without passing its signal on, stop rather than run on as an orphan.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown(0);
}, 1_000).unref();

let firstSignalAt = 0;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    signals += 1;
    if (signals === 1) {
      firstSignalAt = Date.now();
      void shutdown(0);
      return;
    }
    // Ctrl-C reaches us twice at once (from the terminal, and forwarded by npm): only a later signal means "hurry".
    if (Date.now() - firstSignalAt < 2_000) return;
    say("killing every process now");
    for (const supervised of cluster?.processes() ?? []) signalGroup(supervised.pid, "SIGKILL");
    void sweepNodeLeftovers(flags.dir).finally(() => process.exit(130));
  });
}

try {
  starting = startCluster({
    root: path.resolve(flags.dir),
    kubeconfig: path.resolve(flags.kubeconfig),
    san: {
      capacity: flags.sanCapacity,
      ...(flags.maxSnapshotsPerVolume === undefined ? {} : { maxSnapshotsPerVolume: Number(flags.maxSnapshotsPerVolume) }),
      ...(flags.snapshotRate === undefined ? {} : { snapshotRate: flags.snapshotRate }),
    },
    nodeName: flags.nodeName,
    chartDir: path.resolve(flags.chart),
    examplesDir: path.resolve(flags.examples),
    tokenDuration: flags.tokenDuration,
    log: say,
    onProcessExit: (process) => {
      say(`${process.name} ${process.exitStatus() ?? "ended"}; its log ends with:\n${process.logTail(15)}`);
      void shutdown(1);
    },
  });
  cluster = (await starting) as Cluster;
} catch (error) {
  process.stderr.write(`up: the cluster did not start: ${(error as Error).message}\n`);
  process.exit(1);
}
if (signals === 0 && cluster) {
  say(`ready (logs in ${path.join(flags.dir, "logs")}; Ctrl-C stops everything): export KUBECONFIG=${cluster.kubeconfig}; kubectl get sc`);
}
