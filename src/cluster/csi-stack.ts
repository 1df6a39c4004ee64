// The esan half of the local cluster: the chart (helm install), snapshot-controller, the Node and CSINode objects
// kubelet and node-driver-registrar would write, `esan san serve`, `esan csi` in controller mode with its sidecars,
// `esan csi` in node mode, and the classes of examples/. Every process that calls the Kubernetes API does so with a
// token of its chart ServiceAccount, never as admin.
import fs from "node:fs";
import path from "node:path";
import { failIfExited, serviceAccountKubeconfig, type ControlPlane } from "./control-plane.ts";
import type { KubeObject } from "./kube-client.ts";
import { apiPath } from "./kube-client.ts";
import { runCommand } from "./kubectl.ts";
import { canConnect, freePort } from "./network.ts";
import { serviceAccountFor, type AccountListing, type ChartComponent } from "./service-accounts.ts";
import { waitFor, type Supervised, type Supervisor } from "./supervisor.ts";
import { PROJECT_ROOT, type ClusterTools } from "./tools.ts";

/** The CSI driver's name. */
export const DRIVER_NAME = "esan.csi.dev";
/** The audience csi-snapshot-metadata expects in its clients' tokens. */
export const SNAPSHOT_METADATA_AUDIENCE = "esan-snapshot-metadata";
/** Kinds of examples/ that the cluster applies: the classes users pick from. */
export const CLASS_KINDS = ["StorageClass", "VolumeSnapshotClass", "VolumeGroupSnapshotClass"];

/** Limits and size of the SAN (`esan san create` flags). */
export interface SanOptions {
  /** Default `20GiB` (thin: only written chunks take space). */
  capacity?: string;
  maxSnapshotsPerVolume?: number;
  /** `COUNT/DURATION`, e.g. `7/20s`. */
  snapshotRate?: string;
}

/** What starting the esan half needs. */
export interface CsiStackContext {
  root: string;
  /** Short directory for unix sockets. */
  socketDir: string;
  tools: ClusterTools;
  supervisor: Supervisor;
  controlPlane: ControlPlane;
  log: (line: string) => void;
  tokenDuration: string;
  nodeName: string;
  namespace: string;
  release: string;
  chartDir: string;
  examplesDir: string;
  san: SanOptions;
  /** csi-snapshotter's and csi-provisioner's longest retry back-off (default 5m, their own default). */
  retryIntervalMax: string;
}

/** The running esan half. */
export interface CsiStack {
  sanApi: string;
  sanDataDir: string;
  controllerEndpoint: string;
  nodeEndpoint: string;
  nodeStateDir: string;
  snapshotMetadataAddress: string;
  /** The chart's ServiceAccount of each component. */
  serviceAccounts: Partial<Record<ChartComponent, string>>;
  processes: Supervised[];
}

const ESAN = path.join(PROJECT_ROOT, "bin", "esan");

/** Starts the esan half of the cluster on a running control plane. */
export async function startCsiStack(context: CsiStackContext): Promise<CsiStack> {
  const { root, socketDir, tools, supervisor, controlPlane, log } = context;
  const { kubectl, admin } = controlPlane;

  // csi-snapshot-metadata's port is chosen first: the chart renders the SnapshotMetadataService that advertises it.
  const metadataPort = await freePort();
  const snapshotMetadataAddress = `127.0.0.1:${metadataPort}`;
  await installChart(context, snapshotMetadataAddress);
  const accounts = await admin.list<AccountListing>(`${apiPath("v1", "serviceaccounts", context.namespace)}?labelSelector=app.kubernetes.io%2Finstance%3D${context.release}`);
  const serviceAccounts: Partial<Record<ChartComponent, string>> = {};
  const kubeconfigs = new Map<ChartComponent, string>();
  const kubeconfigOf = async (component: ChartComponent): Promise<string> => {
    let file = kubeconfigs.get(component);
    if (file === undefined) {
      const account = serviceAccountFor(component, accounts);
      serviceAccounts[component] = account;
      file = await serviceAccountKubeconfig(kubectl, root, controlPlane.server, controlPlane.pki, context.namespace, account, context.tokenDuration);
      kubeconfigs.set(component, file);
    }
    return file;
  };

  // The snapshot-controller is cluster-wide and driver-agnostic; the chart holds its ServiceAccount and RBAC.
  const snapshotController = supervisor.start("snapshot-controller", tools.bin("snapshot-controller"), [
    `--kubeconfig=${await kubeconfigOf("snapshot-controller")}`,
    "--feature-gates=CSIVolumeGroupSnapshot=true",
    "--leader-election=false",
    `--retry-interval-max=${context.retryIntervalMax}`,
  ]);
  // The node plugin's account exists, but it is given no token: esan csi --mode node never calls the Kubernetes API.
  serviceAccounts.node = serviceAccountFor("node", accounts);

  await registerNode(context);

  // The SAN.
  const sanDataDir = path.join(root, "san");
  const createArgs = ["san", "create", "--data-dir", sanDataDir, "--capacity", context.san.capacity ?? "20GiB"];
  if (context.san.maxSnapshotsPerVolume !== undefined) createArgs.push("--max-snapshots-per-volume", String(context.san.maxSnapshotsPerVolume));
  if (context.san.snapshotRate !== undefined) createArgs.push("--snapshot-rate", context.san.snapshotRate);
  const created = await runCommand(ESAN, createArgs);
  if (created.code !== 0) throw new Error(`\`esan ${createArgs.join(" ")}\` failed: ${created.stderr.trim()}`);
  const apiSocket = path.join(socketDir, "san-api.sock");
  const nbdSocket = path.join(socketDir, "san-nbd.sock");
  const san = supervisor.start("esan-san", ESAN, ["san", "serve", "--data-dir", sanDataDir, "--api", `unix://${apiSocket}`, "--nbd", `unix://${nbdSocket}`], { graceMs: 40_000 });
  await waitForSocket(san, apiSocket);
  await waitForSocket(san, nbdSocket);
  log(`esan san serving ${sanDataDir} (${createArgs.slice(4).join(" ")})`);

  // esan csi talks to the SAN and to its sockets only, never to Kubernetes, so it needs no token.
  const controllerSocket = path.join(socketDir, "csi-controller.sock");
  const nodeSocket = path.join(socketDir, "csi-node.sock");
  const nodeStateDir = path.join(root, "node-state");
  const controller = supervisor.start("esan-csi-controller", ESAN, [
    "csi",
    "--mode",
    "controller",
    "--endpoint",
    `unix://${controllerSocket}`,
    "--san",
    `unix://${apiSocket}`,
    "--node-id",
    context.nodeName,
  ]);
  const node = supervisor.start("esan-csi-node", ESAN, ["csi", "--mode", "node", "--endpoint", `unix://${nodeSocket}`, "--node-id", context.nodeName, "--state-dir", nodeStateDir]);
  await waitForSocket(controller, controllerSocket);
  await waitForSocket(node, nodeSocket);
  log("esan csi serving in controller and node mode");

  const csiAddress = `--csi-address=${controllerSocket}`;
  const sidecars: Supervised[] = [];
  sidecars.push(
    supervisor.start("csi-provisioner", tools.bin("csi-provisioner"), [
      csiAddress,
      `--kubeconfig=${await kubeconfigOf("controller")}`,
      "--timeout=60s",
      "--default-fstype=ext4",
      `--retry-interval-max=${context.retryIntervalMax}`,
    ]),
  );
  sidecars.push(supervisor.start("csi-attacher", tools.bin("csi-attacher"), [csiAddress, `--kubeconfig=${await kubeconfigOf("controller")}`, "--timeout=60s"]));
  sidecars.push(
    supervisor.start("csi-snapshotter", tools.bin("csi-snapshotter"), [
      csiAddress,
      `--kubeconfig=${await kubeconfigOf("controller")}`,
      "--timeout=60s",
      "--feature-gates=CSIVolumeGroupSnapshot=true",
      `--retry-interval-max=${context.retryIntervalMax}`,
    ]),
  );
  sidecars.push(supervisor.start("csi-resizer", tools.bin("csi-resizer"), [csiAddress, `--kubeconfig=${await kubeconfigOf("controller")}`, "--timeout=60s"]));

  // csi-snapshot-metadata serves the SnapshotMetadata API to backup tools over TLS, advertised by the chart's
  // SnapshotMetadataService object (its address, audience and CA).
  sidecars.push(
    supervisor.start("csi-snapshot-metadata", tools.bin("csi-snapshot-metadata"), [
      csiAddress,
      `--kubeconfig=${await kubeconfigOf("controller")}`,
      `--port=${metadataPort}`,
      `--tls-cert=${controlPlane.pki.snapshotMetadata.cert}`,
      `--tls-key=${controlPlane.pki.snapshotMetadata.key}`,
      `--audience=${SNAPSHOT_METADATA_AUDIENCE}`,
    ]),
  );
  await waitFor(
    async () => {
      for (const sidecar of sidecars) failIfExited(sidecar);
      return await canConnect(snapshotMetadataAddress);
    },
    60_000,
    () => `csi-snapshot-metadata did not listen on ${snapshotMetadataAddress} within 60 s:\n${sidecars.at(-1)?.logTail() ?? ""}`,
  );
  failIfExited(snapshotController);
  log(`snapshot-controller started as ServiceAccount ${serviceAccounts["snapshot-controller"]}; ${sidecars.map((s) => s.name).join(", ")} as ${serviceAccounts.controller}`);

  await applyExampleClasses(context);
  return {
    sanApi: `unix://${apiSocket}`,
    sanDataDir,
    controllerEndpoint: `unix://${controllerSocket}`,
    nodeEndpoint: `unix://${nodeSocket}`,
    nodeStateDir,
    snapshotMetadataAddress,
    serviceAccounts,
    processes: [snapshotController, san, controller, node, ...sidecars],
  };
}

/**
 * `helm install` of the chart into the release namespace, with the SnapshotMetadataService pointing at the local
 * csi-snapshot-metadata (address and the CA of its certificate).
 */
async function installChart(context: CsiStackContext, snapshotMetadataAddress: string): Promise<void> {
  if (!fs.existsSync(path.join(context.chartDir, "Chart.yaml"))) {
    throw new Error(`There is no Helm chart at ${context.chartDir} (no Chart.yaml): the local cluster installs the esan chart from deploy/helm/esan/.`);
  }
  const helmHome = path.join(context.root, "helm");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELM_CACHE_HOME: path.join(helmHome, "cache"),
    HELM_CONFIG_HOME: path.join(helmHome, "config"),
    HELM_DATA_HOME: path.join(helmHome, "data"),
  };
  delete env.KUBECONFIG;
  const args = [
    "install",
    context.release,
    context.chartDir,
    "--namespace",
    context.namespace,
    "--create-namespace",
    `--kubeconfig=${context.controlPlane.adminKubeconfig}`,
    "--set",
    "snapshotMetadata.service.create=true",
    "--set",
    `snapshotMetadata.service.address=${snapshotMetadataAddress}`,
    "--set",
    `snapshotMetadata.service.audience=${SNAPSHOT_METADATA_AUDIENCE}`,
    "--set-file",
    `snapshotMetadata.service.caCert=${context.controlPlane.pki.ca.cert}`,
  ];
  const result = await runCommand(context.tools.bin("helm"), args, { env });
  if (result.code !== 0) throw new Error(`\`helm ${args.join(" ")}\` failed: ${(result.stderr || result.stdout).trim()}`);
  context.log(`helm installed ${displayPath(context.chartDir)} as release ${context.release} in namespace ${context.namespace}`);
}

/**
 * The Node and CSINode objects of the one node, as kubelet and node-driver-registrar would write them (there is no
 * kubelet): the Node lets the attach-detach controller manage it, and the CSINode maps it to esan's node id.
 */
async function registerNode(context: CsiStackContext): Promise<void> {
  const { admin } = context.controlPlane;
  await admin.create(apiPath("v1", "nodes"), {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: context.nodeName, labels: { "kubernetes.io/hostname": context.nodeName }, annotations: { "volumes.kubernetes.io/controller-managed-attach-detach": "true" } },
  });
  await admin.create(apiPath("storage.k8s.io/v1", "csinodes"), {
    apiVersion: "storage.k8s.io/v1",
    kind: "CSINode",
    metadata: { name: context.nodeName },
    spec: { drivers: [{ name: DRIVER_NAME, nodeID: context.nodeName, topologyKeys: [] }] },
  });
}

/** Applies the StorageClass, VolumeSnapshotClasses and VolumeGroupSnapshotClass found in examples/. */
async function applyExampleClasses(context: CsiStackContext): Promise<void> {
  const { kubectl } = context.controlPlane;
  const files = fs.existsSync(context.examplesDir) ? fs.readdirSync(context.examplesDir).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  const applied: string[] = [];
  for (const file of files) {
    const full = path.join(context.examplesDir, file);
    if (!CLASS_KINDS.some((kind) => new RegExp(`^kind:\\s*${kind}\\s*$`, "m").test(fs.readFileSync(full, "utf8")))) continue;
    // kubectl reads the YAML; only the class objects of the file are applied.
    const rendered = parseJsonStream(await kubectl.run(["create", "--dry-run=client", "-o", "json", "-f", full]));
    const objects = rendered.flatMap((o) => o.items ?? [o]).filter((object) => CLASS_KINDS.includes(object.kind ?? ""));
    for (const object of objects) {
      await kubectl.run(["apply", "-f", "-"], JSON.stringify(object));
      applied.push(`${object.kind}/${object.metadata.name}`);
    }
  }
  if (!CLASS_KINDS.slice(0, 2).every((kind) => applied.some((a) => a.startsWith(`${kind}/`)))) {
    throw new Error(`examples/ (${context.examplesDir}) holds no StorageClass or no VolumeSnapshotClass (applied: ${applied.join(", ") || "nothing"}).`);
  }
  context.log(`applied ${applied.join(", ")} from ${displayPath(context.examplesDir)}`);
}

/** The objects kubectl prints for a multi-document file with `-o json`: one indented JSON object after another. */
export function parseJsonStream(text: string): (KubeObject & { items?: KubeObject[] })[] {
  return text
    .split(/^\}\s*\n(?=\{)/m)
    .map((part, index, parts) => (index < parts.length - 1 ? `${part}}` : part).trim())
    .filter((part) => part !== "")
    .map((part) => JSON.parse(part) as KubeObject & { items?: KubeObject[] });
}

/** `dir` relative to the project when it is inside it. */
export function displayPath(dir: string): string {
  const relative = path.relative(PROJECT_ROOT, dir);
  return relative === "" || relative.startsWith("..") ? dir : relative;
}

async function waitForSocket(process: Supervised, socket: string): Promise<void> {
  await waitFor(
    async () => {
      failIfExited(process);
      return fs.existsSync(socket) && (await canConnect(socket));
    },
    60_000,
    () => `${process.name} did not listen on ${socket} within 60 s:\n${process.logTail()}`,
  );
}
