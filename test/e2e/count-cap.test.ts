// The SAN's per-volume snapshot count cap through Kubernetes: with 3 snapshots allowed per volume, a 4th
// VolumeSnapshot reports SnapshotCountExceeded in its status, and becomes ready once one of the 3 is deleted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startE2eCluster, stopE2eCluster, type Cluster } from "./support/cluster.ts";
import { Kubelet } from "./support/kubelet.ts";
import fs from "node:fs";
import path from "node:path";
import { createBoundPvc, deleteAndWait, esanJson, paths, pvcManifest, snapshotManifest, waitForReadySnapshot, waitUntil, type VolumeSnapshot } from "./support/kube.ts";

const LONG = 900_000;

describe("the snapshot count cap (3 per volume) through VolumeSnapshots", () => {
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    cluster = await startE2eCluster("count", { san: { maxSnapshotsPerVolume: 3 } });
  }, LONG);

  afterAll(async () => {
    const report = await stopE2eCluster(cluster);
    expect(report, "processes ended early, or stopping the cluster left things on the host").toEqual({ exits: [], swept: [], left: [] });
  }, LONG);

  it(
    "reports SnapshotCountExceeded on the 4th VolumeSnapshot and makes it ready after one is deleted",
    async () => {
      if (!cluster) throw new Error("The local cluster did not start (see the beforeAll error).");
      const c = cluster;
      const { pv } = await createBoundPvc(c, pvcManifest("kept", "64Mi"));
      for (const name of ["kept-1", "kept-2", "kept-3"]) {
        await c.admin.create(paths.snapshot(), snapshotManifest(name, "kept"));
        await waitForReadySnapshot(c, name);
      }
      await c.admin.create(paths.snapshot(), snapshotManifest("kept-4", "kept"));
      const refused = await waitUntil(
        () => c.admin.get<VolumeSnapshot>(paths.snapshot("kept-4")),
        (s) => Boolean(s?.status?.error?.message),
        300_000,
        (s) => `VolumeSnapshot kept-4 shows no error after 300 s: ${JSON.stringify(s?.status ?? null)}`,
      );
      expect(refused!.status!.readyToUse).not.toBe(true);
      const message = refused!.status!.error!.message!;
      expect(message).toMatch(/allows 3 snapshots and has 3/);
      expect(message, "the status error names the engine code").toContain("SnapshotCountExceeded");

      await deleteAndWait(c, paths.snapshot("kept-1"));
      await waitForReadySnapshot(c, "kept-4", 300_000);
      const inSan = await esanJson<{ sourceId: string }[]>(c, ["snapshot", "list", "--source", pv.spec.csi.volumeHandle]);
      expect(inSan).toHaveLength(3);
    },
    LONG,
  );

  it(
    "leaves a pod's volume mounted, for the cluster's stop to unpublish and unstage (checked in afterAll: nothing to sweep)",
    async () => {
      if (!cluster) throw new Error("The local cluster did not start (see the beforeAll error).");
      const kubelet = new Kubelet(cluster);
      try {
        const volume = await kubelet.mount("kept");
        fs.writeFileSync(path.join(volume.targetPath, "in-use"), "the pod still runs");
      } finally {
        kubelet.close();
      }
    },
    LONG,
  );
});
