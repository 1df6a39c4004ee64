// What the e2e tests do as a Kubernetes user: create PVCs, VolumeSnapshots and VolumeGroupSnapshots, wait for their
// status, delete them; and read the SAN with the esan CLI, as an administrator would.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import type { Cluster } from "../../../src/cluster/cluster.ts";
import { apiPath, type KubeObject } from "../../../src/cluster/kube-client.ts";
import { sleep } from "../../../src/cluster/supervisor.ts";
import { PROJECT_ROOT } from "../../../src/cluster/tools.ts";

const run = promisify(execFile);

export const NAMESPACE = "default";
export const MiB = 1024 * 1024;
export const STORAGE_CLASS = "esan";
export const INSTANT_CLASS = "esan-instant";
export const DURABLE_CLASS = "esan-durable";
export const SNAPSHOT_API = "snapshot.storage.k8s.io/v1";
export const GROUP_SNAPSHOT_API = "groupsnapshot.storage.k8s.io/v1";

/** Paths of the objects the tests use. */
export const paths = {
  pvc: (name?: string) => apiPath("v1", "persistentvolumeclaims", NAMESPACE, name),
  pv: (name?: string) => apiPath("v1", "persistentvolumes", undefined, name),
  snapshot: (name?: string) => apiPath(SNAPSHOT_API, "volumesnapshots", NAMESPACE, name),
  snapshotContent: (name?: string) => apiPath(SNAPSHOT_API, "volumesnapshotcontents", undefined, name),
  groupSnapshot: (name?: string) => apiPath(GROUP_SNAPSHOT_API, "volumegroupsnapshots", NAMESPACE, name),
  groupSnapshotClass: (name?: string) => apiPath(GROUP_SNAPSHOT_API, "volumegroupsnapshotclasses", undefined, name),
  volumeAttachment: (name?: string) => apiPath("storage.k8s.io/v1", "volumeattachments", undefined, name),
  pod: (name?: string) => apiPath("v1", "pods", NAMESPACE, name),
  events: () => apiPath("v1", "events", NAMESPACE),
};

export type Pvc = KubeObject & {
  spec: { volumeName?: string; resources: { requests: { storage: string } } };
  status?: { phase?: string; capacity?: { storage?: string } };
};
export type Pv = KubeObject & {
  spec: { capacity: { storage: string }; accessModes: string[]; csi: { driver: string; volumeHandle: string; fsType?: string; volumeAttributes?: Record<string, string> } };
};
export type VolumeSnapshot = KubeObject & {
  status?: { readyToUse?: boolean; restoreSize?: string; boundVolumeSnapshotContentName?: string; error?: { message?: string }; volumeGroupSnapshotName?: string };
};
export type VolumeSnapshotContent = KubeObject & { status?: { snapshotHandle?: string; readyToUse?: boolean; restoreSize?: number } };

/** A PVC of the esan StorageClass, optionally restored or cloned from `dataSource`. */
export function pvcManifest(name: string, size: string, options: { dataSource?: { kind: "VolumeSnapshot" | "PersistentVolumeClaim"; name: string }; labels?: Record<string, string> } = {}): KubeObject {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace: NAMESPACE, ...(options.labels ? { labels: options.labels } : {}) },
    spec: {
      storageClassName: STORAGE_CLASS,
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: size } },
      ...(options.dataSource
        ? { dataSource: { kind: options.dataSource.kind, name: options.dataSource.name, ...(options.dataSource.kind === "VolumeSnapshot" ? { apiGroup: "snapshot.storage.k8s.io" } : {}) } }
        : {}),
    },
  };
}

/** A VolumeSnapshot of PVC `pvc` in class `className`. */
export function snapshotManifest(name: string, pvc: string, className = INSTANT_CLASS): KubeObject {
  return {
    apiVersion: SNAPSHOT_API,
    kind: "VolumeSnapshot",
    metadata: { name, namespace: NAMESPACE },
    spec: { volumeSnapshotClassName: className, source: { persistentVolumeClaimName: pvc } },
  };
}

/** Polls `get` every 250 ms until `done` holds for what it returns; throws `describe(last)` after `timeoutMs`. */
export async function waitUntil<T>(get: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, describe: (last: T | undefined) => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await get();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(describe(last));
    await sleep(250);
  }
}

/** Creates a PVC and waits until it is Bound; returns it with its PV. */
export async function createBoundPvc(cluster: Cluster, manifest: KubeObject, timeoutMs = 180_000): Promise<{ pvc: Pvc; pv: Pv }> {
  await cluster.admin.create(paths.pvc(), manifest);
  return await waitForBound(cluster, manifest.metadata.name, timeoutMs);
}

/** Waits until PVC `name` is Bound; returns it with its PV. */
export async function waitForBound(cluster: Cluster, name: string, timeoutMs = 180_000): Promise<{ pvc: Pvc; pv: Pv }> {
  const pvc = await waitUntil(
    () => cluster.admin.get<Pvc>(paths.pvc(name)),
    (p) => p?.status?.phase === "Bound",
    timeoutMs,
    (p) => `PVC ${name} is not Bound after ${timeoutMs / 1000} s (phase ${p?.status?.phase ?? "none"}).`,
  );
  const pv = await cluster.admin.get<Pv>(paths.pv(pvc!.spec.volumeName));
  if (!pv) throw new Error(`PVC ${name} is Bound to ${pvc!.spec.volumeName}, which does not exist.`);
  return { pvc: pvc!, pv };
}

/** Waits until VolumeSnapshot `name` is readyToUse. */
export async function waitForReadySnapshot(cluster: Cluster, name: string, timeoutMs = 180_000): Promise<VolumeSnapshot> {
  const snapshot = await waitUntil(
    () => cluster.admin.get<VolumeSnapshot>(paths.snapshot(name)),
    (s) => s?.status?.readyToUse === true,
    timeoutMs,
    (s) => `VolumeSnapshot ${name} is not readyToUse after ${timeoutMs / 1000} s: ${JSON.stringify(s?.status ?? null)}`,
  );
  return snapshot!;
}

/** Deletes the object at `path` and waits until it is gone. */
export async function deleteAndWait(cluster: Cluster, objectPath: string, timeoutMs = 180_000): Promise<void> {
  await cluster.admin.delete(objectPath);
  await waitUntil(
    () => cluster.admin.get(objectPath),
    (object) => object === null,
    timeoutMs,
    (object) => `${objectPath} still exists ${timeoutMs / 1000} s after its deletion: ${JSON.stringify(object?.metadata ?? null)}`,
  );
}

/** Messages of the events about object `name` (e.g. a VolumeSnapshot), oldest first. */
export async function eventMessages(cluster: Cluster, name: string): Promise<string[]> {
  const events = await cluster.admin.list<KubeObject & { involvedObject: { name: string }; message?: string }>(paths.events());
  return events.filter((e) => e.involvedObject.name === name).map((e) => e.message ?? "");
}

/** Bytes of a Kubernetes quantity in binary units (`64Mi`, `1Gi`) or plain bytes. */
export function quantityBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (!match) throw new Error(`Cannot read the quantity ${quantity}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }[match[2] as "Ki" | "Mi" | "Gi" | "Ti"] ?? 1;
  return Number(match[1]) * unit;
}

/** `esan ARGS --san <the cluster's SAN> --json`, parsed. */
export async function esanJson<T = Record<string, unknown>>(cluster: Cluster, args: readonly string[]): Promise<T> {
  const esan = path.join(PROJECT_ROOT, "bin", "esan");
  try {
    const { stdout } = await run(esan, [...args, "--san", cluster.csi.sanApi, "--json"], { encoding: "utf8", maxBuffer: 16 * MiB });
    return JSON.parse(stdout) as T;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    throw new Error(`esan ${args.join(" ")} failed: ${failed.stdout ?? ""}${failed.stderr ?? ""}`, { cause: error });
  }
}
