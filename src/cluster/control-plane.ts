// The Kubernetes half of the local cluster, as PEERS.md describes it: etcd, kube-apiserver (RBAC, a token file),
// kube-controller-manager (the PV controllers and attach-detach) and the snapshot CRDs, each server a supervised local
// process on loopback. (snapshot-controller starts with the chart, whose ServiceAccount it runs as.)
import fs from "node:fs";
import path from "node:path";
import { KubeClient, writeKubeconfig } from "./kube-client.ts";
import { Kubectl } from "./kubectl.ts";
import { freePorts, httpGet } from "./network.ts";
import { createPki, randomToken, type ClusterPki } from "./pki.ts";
import { waitFor, type Supervised, type Supervisor } from "./supervisor.ts";
import type { ClusterTools } from "./tools.ts";

/** The controllers kube-controller-manager runs: the PV ones (PEERS.md) and attach-detach, which creates VolumeAttachments. */
export const CONTROLLERS = [
  "persistentvolume-binder-controller",
  "persistentvolume-expander-controller",
  "persistentvolumeclaim-protection-controller",
  "persistentvolume-protection-controller",
  "persistentvolume-attach-detach-controller",
];

/** A running control plane. */
export interface ControlPlane {
  server: string;
  pki: ClusterPki;
  adminToken: string;
  adminKubeconfig: string;
  admin: KubeClient;
  kubectl: Kubectl;
  processes: Supervised[];
}

/** What starting the control plane needs. */
export interface ControlPlaneContext {
  root: string;
  tools: ClusterTools;
  supervisor: Supervisor;
  log: (line: string) => void;
  /** Lifetime of the ServiceAccount tokens the components get. */
  tokenDuration: string;
  /** Where the admin kubeconfig goes. */
  adminKubeconfig: string;
}

/** Starts etcd, kube-apiserver and kube-controller-manager, and applies the CRDs. */
export async function startControlPlane(context: ControlPlaneContext): Promise<ControlPlane> {
  const { root, tools, supervisor, log } = context;
  const pki = await createPki(path.join(root, "pki"));
  const [etcdClientPort, etcdPeerPort, apiserverPort] = (await freePorts(3)) as [number, number, number];

  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const etcd = supervisor.start("etcd", tools.bin("etcd"), [
    "--name=esan",
    `--data-dir=${path.join(root, "etcd")}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=esan=${peerUrl}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ]);
  await waitFor(
    async () => {
      failIfExited(etcd);
      return ((await httpGet(`${etcdUrl}/health`)) ?? "").includes('"health":"true"');
    },
    60_000,
    () => `etcd did not become healthy on ${etcdUrl} within 60 s:\n${etcd.logTail()}`,
  );
  log(`etcd ready on ${etcdUrl}`);

  const adminToken = randomToken();
  const controllerManagerToken = randomToken();
  const tokensFile = path.join(root, "pki", "tokens.csv");
  fs.writeFileSync(tokensFile, `${adminToken},admin,admin,system:masters\n${controllerManagerToken},system:kube-controller-manager,kube-controller-manager\n`, { mode: 0o600 });
  const server = `https://127.0.0.1:${apiserverPort}`;
  const apiserver = supervisor.start("kube-apiserver", tools.bin("kube-apiserver"), [
    `--etcd-servers=${etcdUrl}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiserverPort}`,
    `--cert-dir=${path.join(root, "pki", "apiserver")}`,
    `--tls-cert-file=${pki.apiserver.cert}`,
    `--tls-private-key-file=${pki.apiserver.key}`,
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${pki.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${pki.serviceAccountPrivateKey}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    "--authorization-mode=RBAC",
    `--token-auth-file=${tokensFile}`,
    "--disable-admission-plugins=ServiceAccount",
    "--allow-privileged=true",
    "--endpoint-reconciler-type=none",
    "--profiling=false",
  ]);
  const admin = new KubeClient(server, pki.ca.cert, adminToken);
  await waitFor(
    async () => {
      failIfExited(apiserver);
      return await admin.ready();
    },
    180_000,
    () => `kube-apiserver did not become ready on ${server} within 180 s:\n${apiserver.logTail()}`,
    500,
  );
  writeKubeconfig(context.adminKubeconfig, server, pki.ca.cert, "admin", adminToken);
  const kubectl = new Kubectl(tools.kubectl, context.adminKubeconfig);
  log(`kube-apiserver ready on ${server}`);

  const controllerManagerKubeconfig = path.join(root, "kubeconfigs", "kube-controller-manager.kubeconfig");
  fs.mkdirSync(path.dirname(controllerManagerKubeconfig), { recursive: true });
  writeKubeconfig(controllerManagerKubeconfig, server, pki.ca.cert, "system:kube-controller-manager", controllerManagerToken);
  // It runs as the bootstrap system:kube-controller-manager user, and each controller with the token of its own
  // ServiceAccount (as kubeadm runs it), so the controllers' RBAC is Kubernetes' own.
  const controllerManager = supervisor.start("kube-controller-manager", tools.bin("kube-controller-manager"), [
    `--kubeconfig=${controllerManagerKubeconfig}`,
    `--controllers=${CONTROLLERS.join(",")}`,
    "--use-service-account-credentials=true",
    "--leader-elect=false",
    "--secure-port=0",
  ]);

  log("applying the snapshot, group snapshot and snapshot metadata CRDs");
  await kubectl.run(["apply", "--server-side", "-f", tools.snapshotCrdDir, "-f", tools.metadataCrdDir]);
  await kubectl.run(["wait", "--for=condition=Established", "--timeout=120s", "crd", "--all"]);

  failIfExited(controllerManager);
  log("kube-controller-manager started");

  return { server, pki, adminToken, adminKubeconfig: context.adminKubeconfig, admin, kubectl, processes: [etcd, apiserver, controllerManager] };
}

/**
 * A kubeconfig with a token of ServiceAccount NAMESPACE/NAME (`kubectl create token`), so the component it is for acts
 * with that account's RBAC, never as admin.
 */
export async function serviceAccountKubeconfig(kubectl: Kubectl, root: string, server: string, pki: ClusterPki, namespace: string, name: string, duration: string): Promise<string> {
  const token = (await kubectl.run(["create", "token", name, "-n", namespace, `--duration=${duration}`])).trim();
  const file = path.join(root, "kubeconfigs", `${namespace}.${name}.kubeconfig`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeKubeconfig(file, server, pki.ca.cert, `system:serviceaccount:${namespace}:${name}`, token);
  return file;
}

/** Throws a sentence with the log tail if `process` has ended. */
export function failIfExited(process: Supervised): void {
  const status = process.exitStatus();
  if (status !== undefined) throw new Error(`${process.name} ${status}:\n${process.logTail()}`);
}
