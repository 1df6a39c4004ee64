// Group snapshots with fsfreeze, on a real engine (LocalSanClient on a temp data directory): the freezer is called
// around the one commit, and the thaw runs whether the commit succeeds or the engine refuses it.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { LocalSanClient } from "../san/local-san-client.ts";
import { San } from "../storage/san.ts";
import { groupControllerService, type FilesystemFreezer } from "./group-controller-service.ts";
import { localFreezer } from "./node-binding.ts";
import type { CallContext, UnaryMethod } from "./rpc.ts";

const MiB = 1024 * 1024;
const logger = pino({ level: "silent" });
const context: CallContext = { requestId: "c1", logger, cancelled: () => false };

/** A freezer that records what it was asked, in order; the node side's real one runs fsfreeze on staged mounts. */
function recordingFreezer(events: string[]): FilesystemFreezer {
  return {
    freeze: (ids) => {
      events.push(`freeze ${ids.join(",")}`);
      return Promise.resolve(() => {
        events.push(`thaw ${ids.join(",")}`);
        return Promise.resolve();
      });
    },
  };
}

describe("CreateVolumeGroupSnapshot with fsfreeze", () => {
  let temp: ReturnType<typeof tempDataDir>;
  let san: LocalSanClient;

  beforeEach(async () => {
    temp = tempDataDir("esan-group");
    // One snapshot creation per volume per hour: the second group snapshot of the same volumes is refused.
    San.create(temp.dir, { capacityBytes: 64 * MiB, limits: { snapshotRateCount: 1, snapshotRateWindowMs: 3_600_000 } }).close();
    san = LocalSanClient.open(temp.dir);
    await san.createVolumeGroup("vg");
    await san.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: MiB });
    await san.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: MiB });
  });

  afterEach(async () => {
    await san.close();
    temp.cleanup();
  });

  it("freezes before the commit and thaws after it, also when the engine refuses the snapshot", async () => {
    const events: string[] = [];
    const create = groupControllerService({ san, logger, freezer: recordingFreezer(events) }).CreateVolumeGroupSnapshot as UnaryMethod<unknown>;
    const request = { name: "first", sourceVolumeIds: ["vg/b", "vg/a"], parameters: { fsfreeze: "true" } };
    const created = (await create.handle(request, context)) as { groupSnapshot: { snapshots: unknown[] } };
    expect(created.groupSnapshot.snapshots).toHaveLength(2);
    expect(events).toEqual(["freeze vg/a,vg/b", "thaw vg/a,vg/b"]);
    // A retry of an existing group snapshot freezes nothing.
    await create.handle(request, context);
    expect(events).toHaveLength(2);
    // The rate cap refuses the next one: the filesystems are thawed all the same, and the engine's sentence comes back.
    await expect(create.handle({ ...request, name: "second" }, context)).rejects.toThrow(/allows 1 snapshot creations per/);
    expect(events).toEqual(["freeze vg/a,vg/b", "thaw vg/a,vg/b", "freeze vg/a,vg/b", "thaw vg/a,vg/b"]);
  });
});

describe("localFreezer", () => {
  it("thaws what it froze when a later volume cannot be frozen", async () => {
    const calls: string[] = [];
    const node = {
      freezeVolume: (id: string) => {
        calls.push(`freeze ${id}`);
        return id === "vg/c" ? Promise.reject(new Error("Cannot freeze vg/c: no filesystem is mounted there.")) : Promise.resolve();
      },
      thawVolume: (id: string) => {
        calls.push(`thaw ${id}`);
        return Promise.resolve();
      },
    };
    await expect(localFreezer(node).freeze(["vg/a", "vg/b", "vg/c"])).rejects.toThrow(/no filesystem is mounted/);
    expect(calls).toEqual(["freeze vg/a", "freeze vg/b", "freeze vg/c", "thaw vg/a", "thaw vg/b"]);
    calls.length = 0;
    const thaw = await localFreezer(node).freeze(["vg/a", "vg/b"]);
    await thaw();
    expect(calls).toEqual(["freeze vg/a", "freeze vg/b", "thaw vg/a", "thaw vg/b"]);
  });
});
