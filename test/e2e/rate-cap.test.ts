// The SAN's snapshot rate cap through Kubernetes: with 7 creations per 20 s allowed per volume, 8 VolumeSnapshots
// applied at once give 7 ready snapshots and one that waits with a status error naming the cap and the next slot,
// then becomes ready once the window moved on, without a duplicate from the sidecar's retries.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startE2eCluster, stopE2eCluster, type Cluster } from "./support/cluster.ts";
import { createBoundPvc, esanJson, paths, pvcManifest, snapshotManifest, waitForReadySnapshot, waitUntil, type VolumeSnapshot } from "./support/kube.ts";

const LONG = 900_000;

describe("the snapshot rate cap (7 per 20 s) through VolumeSnapshots", () => {
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    cluster = await startE2eCluster("rate", { san: { snapshotRate: "7/20s" } });
  }, LONG);

  afterAll(async () => {
    const report = await stopE2eCluster(cluster);
    expect(report, "processes ended early, or stopping the cluster left things on the host").toEqual({ exits: [], swept: [], left: [] });
  }, LONG);

  it(
    "makes 7 of 8 simultaneous VolumeSnapshots ready, holds the 8th with an error naming the cap and the next slot, then makes it ready",
    async () => {
      if (!cluster) throw new Error("The local cluster did not start (see the beforeAll error).");
      const c = cluster;
      const { pv } = await createBoundPvc(c, pvcManifest("busy", "64Mi"));
      const names = Array.from({ length: 8 }, (_, i) => `busy-${i}`);
      await Promise.all(names.map((name) => c.admin.create(paths.snapshot(), snapshotManifest(name, "busy"))));

      const snapshots = await waitUntil(
        async () => (await c.admin.list<VolumeSnapshot>(paths.snapshot())).filter((s) => names.includes(s.metadata.name)),
        (all) => all.filter((s) => s.status?.readyToUse === true).length === 7 && all.some((s) => s.status?.readyToUse !== true && s.status?.error?.message),
        300_000,
        (all) => `Expected 7 ready VolumeSnapshots and one with an error; got ${JSON.stringify(all?.map((s) => ({ name: s.metadata.name, status: s.status })))}`,
      );
      const held = snapshots.find((s) => s.status?.readyToUse !== true)!;
      const message = held.status!.error!.message!;
      expect(message).toMatch(/allows 7 snapshot creations per 20s/);
      expect(message).toMatch(/next slot opens at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);

      await waitForReadySnapshot(c, held.metadata.name, 300_000);
      const inSan = await esanJson<{ sourceId: string }[]>(c, ["snapshot", "list", "--source", pv.spec.csi.volumeHandle]);
      expect(inSan).toHaveLength(8);
      expect((await c.admin.list(paths.snapshotContent())).length).toBe(8);
    },
    LONG,
  );
});
