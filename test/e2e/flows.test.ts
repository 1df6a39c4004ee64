// Kubernetes end to end on a real control plane (etcd, kube-apiserver, kube-controller-manager, snapshot-controller,
// the CSI sidecars, all as local processes, with the chart's RBAC): a user's PVCs, snapshots, restores, clones,
// expansion, group snapshots and durable snapshots, with the test playing kubelet on the node plugin's socket.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../src/cluster/tools.ts";
import { startE2eCluster, stopE2eCluster, type Cluster } from "./support/cluster.ts";
import {
  createBoundPvc,
  deleteAndWait,
  DURABLE_CLASS,
  esanJson,
  GROUP_SNAPSHOT_API,
  MiB,
  NAMESPACE,
  paths,
  pvcManifest,
  quantityBytes,
  snapshotManifest,
  waitForBound,
  waitForReadySnapshot,
  waitUntil,
  type Pv,
  type Pvc,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from "./support/kube.ts";
import { Kubelet, type MountedVolume } from "./support/kubelet.ts";

const GiB = 1024 * MiB;
const EXAMPLES = path.join(PROJECT_ROOT, "examples");
const LONG = 900_000;

describe("Kubernetes end to end: PVCs, snapshots, clones, expansion, group and durable snapshots", () => {
  let cluster: Cluster | undefined;
  let kubelet: Kubelet;
  /** Volumes the kubelet holds now; unmounted at the end, or by the cluster's stop if a test failed. */
  const mounted = new Map<string, MountedVolume>();

  const ready = () => {
    if (!cluster) throw new Error("The local cluster did not start (see the beforeAll error).");
    return cluster;
  };
  const mount = async (pvc: string) => {
    const volume = await kubelet.mount(pvc);
    mounted.set(pvc, volume);
    return volume;
  };
  const unmount = async (pvc: string) => {
    const volume = mounted.get(pvc);
    if (!volume) return;
    await kubelet.unmount(volume);
    mounted.delete(pvc);
  };
  const apply = (file: string) => ready().kubectl.run(["apply", "-f", path.join(EXAMPLES, file)]);

  beforeAll(async () => {
    cluster = await startE2eCluster("flows");
    kubelet = new Kubelet(cluster);
  }, LONG);

  afterAll(async () => {
    kubelet?.close();
    const report = await stopE2eCluster(cluster);
    expect(report, "processes ended early, or stopping the cluster left things on the host").toEqual({ exits: [], swept: [], left: [] });
  }, LONG);

  it(
    "binds the example PVC, snapshots it, restores and clones it with the same files, restores after the source is deleted, and expands",
    async () => {
      const c = ready();
      await apply("pvc.yaml");
      await waitForBound(c, "esan-example");
      const source = await mount("esan-example");
      const orders = crypto.randomBytes(3 * MiB);
      fs.writeFileSync(path.join(source.targetPath, "orders.db"), orders);
      fs.mkdirSync(path.join(source.targetPath, "logs"));
      fs.writeFileSync(path.join(source.targetPath, "logs", "today.log"), "first line\n");
      syncFilesystem(source.targetPath);

      await apply("volumesnapshot.yaml");
      const snapshot = await waitForReadySnapshot(c, "esan-example-snapshot");
      expect(quantityBytes(snapshot.status!.restoreSize!)).toBe(1 * GiB);
      // Written after the snapshot: a restore must not have it, a clone of the PVC must.
      fs.writeFileSync(path.join(source.targetPath, "after-snapshot"), "later");
      syncFilesystem(source.targetPath);

      await apply("pvc-from-snapshot.yaml");
      await waitForBound(c, "esan-example-restore");
      const restored = await mount("esan-example-restore");
      expectFiles(restored, orders);
      expect(fs.existsSync(path.join(restored.targetPath, "after-snapshot"))).toBe(false);

      await apply("pvc-clone.yaml");
      await waitForBound(c, "esan-example-clone");
      const clone = await mount("esan-example-clone");
      expectFiles(clone, orders);
      expect(fs.readFileSync(path.join(clone.targetPath, "after-snapshot"), "utf8")).toBe("later");

      // The source goes away (its PV and SAN volume with it); its snapshot still restores.
      await unmount("esan-example");
      await deleteAndWait(c, paths.pvc("esan-example"));
      await deleteAndWait(c, paths.pv(source.pv.metadata.name));
      const volumes = await esanJson<{ id: string }[]>(c, ["volume", "list"]);
      expect(volumes.map((v) => v.id)).not.toContain(source.volumeHandle);
      await createBoundPvc(c, pvcManifest("restore-after-source-deleted", "1Gi", { dataSource: { kind: "VolumeSnapshot", name: "esan-example-snapshot" } }));
      const late = await mount("restore-after-source-deleted");
      expectFiles(late, orders);

      // Expansion: kubectl patch, csi-resizer grows the volume and the PV, and kubelet (offline, since this node may
      // not grow a published ext4) runs NodeExpandVolume before the pod sees the volume again.
      const before = fs.statfsSync(restored.targetPath);
      await c.kubectl.run(["patch", "pvc", "esan-example-restore", "-n", NAMESPACE, "--type=merge", "-p", JSON.stringify({ spec: { resources: { requests: { storage: "2Gi" } } } })]);
      await waitUntil(
        () => c.admin.get<Pv>(paths.pv(restored.pv.metadata.name)),
        (pv) => pv !== null && quantityBytes(pv.spec.capacity.storage) === 2 * GiB,
        300_000,
        (pv) => `The PV of esan-example-restore still has ${pv?.spec.capacity.storage} 300 s after the PVC asked for 2Gi.`,
      );
      const nodeCapacity = await kubelet.expandOffline(restored);
      expect(nodeCapacity).toBe(2 * GiB);
      const after = fs.statfsSync(restored.targetPath);
      expect(after.blocks * after.bsize).toBeGreaterThan(1.8 * before.blocks * before.bsize);
      expectFiles(restored, orders);
      fs.writeFileSync(path.join(restored.targetPath, "after-expand"), "still writable");
      // kubelet then reports the new size in the PVC's status.
      await c.admin.request("PATCH", `${paths.pvc("esan-example-restore")}/status`, { status: { capacity: { storage: "2Gi" }, allocatedResourceStatuses: null } }, "application/merge-patch+json");
      const pvc = await c.admin.get<Pvc>(paths.pvc("esan-example-restore"));
      expect(pvc?.status?.capacity?.storage).toBe("2Gi");
      const sanVolume = await esanJson<{ sizeBytes: number }>(c, ["volume", "show", restored.volumeHandle]);
      expect(sanVolume.sizeBytes).toBe(2 * GiB);
    },
    LONG,
  );

  it(
    "takes a VolumeGroupSnapshot of two PVCs at one point in time: writes before it are in both restores, writes after it in neither",
    async () => {
      const c = ready();
      const members = ["pair-a", "pair-b"];
      for (const name of members) await createBoundPvc(c, pvcManifest(name, "128Mi", { labels: { group: "pair" } }));
      const volumes = await Promise.all(members.map((name) => mount(name)));
      for (const [index, volume] of volumes.entries()) {
        fs.writeFileSync(path.join(volume.targetPath, "member"), members[index]!);
        fs.writeFileSync(path.join(volume.targetPath, "before"), "before the group snapshot");
        syncFilesystem(volume.targetPath);
      }
      await c.admin.create(paths.groupSnapshot(), {
        apiVersion: GROUP_SNAPSHOT_API,
        kind: "VolumeGroupSnapshot",
        metadata: { name: "pair", namespace: NAMESPACE },
        spec: { volumeGroupSnapshotClassName: "esan-group", source: { selector: { matchLabels: { group: "pair" } } } },
      });
      await waitUntil(
        () => c.admin.get<{ status?: { readyToUse?: boolean; error?: { message?: string } } } & { metadata: { name: string } }>(paths.groupSnapshot("pair")),
        (g) => g?.status?.readyToUse === true,
        300_000,
        (g) => `VolumeGroupSnapshot pair is not readyToUse after 300 s: ${JSON.stringify(g?.status ?? null)}`,
      );
      for (const volume of volumes) {
        fs.writeFileSync(path.join(volume.targetPath, "after"), "after the group snapshot");
        fs.appendFileSync(path.join(volume.targetPath, "before"), " and changed after it");
        syncFilesystem(volume.targetPath);
      }

      const snapshots = (await c.admin.list<VolumeSnapshot>(paths.snapshot())).filter((s) => s.status?.volumeGroupSnapshotName === "pair");
      expect(snapshots).toHaveLength(2);
      const seen: string[] = [];
      for (const [index, snapshot] of snapshots.entries()) {
        await waitForReadySnapshot(c, snapshot.metadata.name);
        const name = `pair-restore-${index}`;
        await createBoundPvc(c, pvcManifest(name, "128Mi", { dataSource: { kind: "VolumeSnapshot", name: snapshot.metadata.name } }));
        const restored = await mount(name);
        seen.push(fs.readFileSync(path.join(restored.targetPath, "member"), "utf8"));
        expect(fs.readFileSync(path.join(restored.targetPath, "before"), "utf8")).toBe("before the group snapshot");
        expect(fs.existsSync(path.join(restored.targetPath, "after"))).toBe(false);
      }
      expect(seen.sort()).toEqual(members);
    },
    LONG,
  );

  it(
    "makes an esan-durable VolumeSnapshot readyToUse only once its export is complete, and restores it",
    async () => {
      const c = ready();
      await createBoundPvc(c, pvcManifest("archive", "512Mi"));
      const volume = await mount("archive");
      // Enough data that the export takes a moment.
      const data = crypto.randomBytes(96 * MiB);
      fs.writeFileSync(path.join(volume.targetPath, "archive.bin"), data);
      syncFilesystem(volume.targetPath);
      await c.admin.create(paths.snapshot(), snapshotManifest("archive-durable", "archive", DURABLE_CLASS));

      // Each round reads the VolumeSnapshot first, then the export's progress: progress only grows, so a snapshot seen
      // ready must show a complete export afterwards.
      const rounds: { readyToUse: boolean; completionPercent: number | null }[] = [];
      for (;;) {
        const snapshot = await c.admin.get<VolumeSnapshot>(paths.snapshot("archive-durable"));
        const readyToUse = snapshot?.status?.readyToUse === true;
        const content = snapshot?.status?.boundVolumeSnapshotContentName ? await c.admin.get<VolumeSnapshotContent>(paths.snapshotContent(snapshot.status.boundVolumeSnapshotContentName)) : null;
        const handle = content?.status?.snapshotHandle;
        const completionPercent = handle ? (await esanJson<{ completionPercent: number }>(c, ["disk-snapshot", "show", handle.replace(/^disk-snapshot:/, "")])).completionPercent : null;
        rounds.push({ readyToUse, completionPercent });
        if (readyToUse) {
          expect(completionPercent).toBe(100);
          break;
        }
        if (rounds.length > 1200) throw new Error(`VolumeSnapshot archive-durable is not readyToUse after 1200 rounds: ${JSON.stringify(snapshot?.status ?? null)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(rounds.filter((r) => r.readyToUse && r.completionPercent !== 100)).toEqual([]);
      // It was seen exporting, not ready, before it was ready.
      expect(rounds.some((r) => !r.readyToUse && r.completionPercent !== null), JSON.stringify(rounds)).toBe(true);
      const snapshot = await waitForReadySnapshot(c, "archive-durable");
      expect(quantityBytes(snapshot.status!.restoreSize!)).toBe(512 * MiB);

      await createBoundPvc(c, pvcManifest("archive-restore", "512Mi", { dataSource: { kind: "VolumeSnapshot", name: "archive-durable" } }));
      const restored = await mount("archive-restore");
      expect(fs.readFileSync(path.join(restored.targetPath, "archive.bin")).equals(data)).toBe(true);
    },
    LONG,
  );

  it(
    "leaves the SAN empty once every PVC, snapshot and group snapshot is deleted",
    async () => {
      const c = ready();
      for (const pvc of [...mounted.keys()]) await unmount(pvc);
      await c.admin.delete(paths.groupSnapshot("pair"));
      for (const snapshot of await c.admin.list<VolumeSnapshot>(paths.snapshot())) {
        if (snapshot.status?.volumeGroupSnapshotName === undefined) await c.admin.delete(paths.snapshot(snapshot.metadata.name));
      }
      for (const pvc of await c.admin.list<Pvc>(paths.pvc())) await c.admin.delete(paths.pvc(pvc.metadata.name));
      const describeLeft = async () =>
        `left: ${(await c.admin.list(paths.pv())).length} PVs, ${(await c.admin.list(paths.snapshotContent())).length} VolumeSnapshotContents, ` +
        `SAN ${JSON.stringify(await esanJson(c, ["san", "show"]))}`;
      const deadline = Date.now() + 300_000;
      for (;;) {
        const pvs = await c.admin.list(paths.pv());
        const contents = await c.admin.list(paths.snapshotContent());
        const san = await esanJson<{ volumeCount: number; snapshotCount: number }>(c, ["san", "show"]);
        const disks = await esanJson<unknown[]>(c, ["disk-snapshot", "list"]);
        if (pvs.length === 0 && contents.length === 0 && san.volumeCount === 0 && san.snapshotCount === 0 && disks.length === 0) break;
        if (Date.now() > deadline) throw new Error(`Deleting everything did not empty the cluster and the SAN within 300 s; ${await describeLeft()}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const san = await esanJson<{ provisionedBytes: number; physicalBytes: number; volumeCount: number; snapshotCount: number }>(c, ["san", "show"]);
      expect(san).toMatchObject({ provisionedBytes: 0, physicalBytes: 0, volumeCount: 0, snapshotCount: 0 });
      expect(await esanJson<unknown[]>(c, ["group-snapshot", "list"])).toEqual([]);
      expect(await c.admin.list(paths.volumeAttachment())).toEqual([]);
    },
    LONG,
  );
});

/** The files the example PVC got before its snapshot. */
function expectFiles(volume: MountedVolume, orders: Buffer): void {
  expect(fs.readFileSync(path.join(volume.targetPath, "orders.db")).equals(orders)).toBe(true);
  expect(fs.readFileSync(path.join(volume.targetPath, "logs", "today.log"), "utf8")).toBe("first line\n");
}

/** `sync -f`: flushes the filesystem holding `dir` to its device, as an application does before a crash-consistent snapshot. */
function syncFilesystem(dir: string): void {
  execFileSync("sync", ["-f", dir]);
}
