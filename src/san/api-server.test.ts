// In-process tests of the SAN API: GrpcSanClient against SanApiServer over a unix socket and loopback TCP, checking that
// results and refusals match LocalSanClient exactly, that TCP needs the token, and that secrets never reach the log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import {
  EsanError,
  InvalidArgumentError,
  NotFoundError,
  SnapshotCountExceededError,
} from "../storage/errors.ts";
import { San } from "../storage/san.ts";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { SanApiServer } from "./api-server.ts";
import { formatEndpoint } from "./endpoints.ts";
import { SanApiError } from "./errors.ts";
import { GrpcSanClient } from "./grpc-san-client.ts";
import { LocalSanClient } from "./local-san-client.ts";
import { MAX_IO_BYTES } from "./san-client.ts";

const MiB = 1024 * 1024;
const TOKEN = "tok-3c1f9a7e5b2d4f60a8e7c6b5a4d3e2f1";

describe("SanApiServer with GrpcSanClient", () => {
  const temp = tempDataDir("esan-api");
  const logLines: string[] = [];
  let local: LocalSanClient;
  let server: SanApiServer;
  let remote: GrpcSanClient;
  let tcpAddress = "";

  beforeAll(async () => {
    San.create(temp.dir, { capacityBytes: 256 * MiB, limits: { maxSnapshotsPerVolume: 3, snapshotRateCount: 100 } }).close();
    local = LocalSanClient.open(temp.dir, { nbdAddress: "tcp://san.example:10809" });
    const logger = pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) });
    server = new SanApiServer({ client: local, logger, token: TOKEN });
    const unix = await server.listen({ kind: "unix", path: `${temp.dir}/api.sock` });
    const tcp = await server.listen({ kind: "tcp", host: "127.0.0.1", port: 0 });
    tcpAddress = formatEndpoint(tcp);
    remote = GrpcSanClient.connect(formatEndpoint(unix));
  });

  afterAll(async () => {
    await remote.close();
    await server.shutdown(1000);
    await local.close();
    temp.cleanup();
  });

  it("creates, lists, writes, reads, snapshots and diffs with the same results as the engine", async () => {
    expect(await remote.createVolumeGroup("vg1")).toEqual((await local.listVolumeGroups())[0]);
    const created = await remote.createVolume({ volumeGroup: "vg1", name: "a", sizeBytes: 8 * MiB });
    expect(created).toEqual(await local.getVolume("vg1/a"));
    expect(await remote.createVolume({ volumeGroup: "vg1", name: "a", sizeBytes: 8 * MiB })).toEqual(created);

    const data = Buffer.alloc(3 * MiB, 7);
    await remote.write("vg1/a", MiB, data);
    await remote.flush();
    expect((await remote.read("vg1/a", MiB, 3 * MiB)).equals(data)).toBe(true);
    expect(await remote.allocatedRanges("vg1/a")).toEqual(await local.allocatedRanges("vg1/a"));

    const snapshot = await remote.createSnapshot({ volumeGroup: "vg1", name: "s1", sourceVolumeId: "vg1/a" });
    expect(snapshot).toEqual(await local.getSnapshot("vg1/s1"));
    expect(snapshot.groupSnapshotId).toBeNull();
    await remote.writeZeroes("vg1/a", MiB, 64 * 1024);
    await remote.trim("vg1/a", 2 * MiB, 128 * 1024, { fua: true });
    expect(await remote.diff("vg1/s1", "vg1/a")).toEqual(await local.diff("vg1/s1", "vg1/a"));

    const clone = await remote.createVolume({ volumeGroup: "vg1", name: "c", sizeBytes: 16 * MiB, source: { kind: "snapshot", id: "vg1/s1" } });
    expect(clone).toEqual(await local.getVolume("vg1/c"));
    expect(await remote.listVolumes({ volumeGroup: "vg1" })).toEqual(await local.listVolumes({ volumeGroup: "vg1" }));
    expect(await remote.listVolumes({ maxEntries: 1 })).toEqual(await local.listVolumes({ maxEntries: 1 }));
    expect(await remote.listSnapshots({ sourceVolumeId: "vg1/a" })).toEqual(await local.listSnapshots({ sourceVolumeId: "vg1/a" }));
    expect(await remote.resizeVolume("vg1/c", 32 * MiB)).toEqual(await local.getVolume("vg1/c"));

    const group = await remote.createGroupSnapshot({ volumeGroup: "vg1", name: "g", volumeIds: ["vg1/a", "vg1/c"] });
    expect(group).toEqual(await local.getGroupSnapshot("vg1/g"));
    expect(await remote.listGroupSnapshots()).toEqual(await local.listGroupSnapshots());
    await remote.deleteGroupSnapshot("vg1/g");
    await remote.deleteSnapshot("vg1/s1");
    await remote.deleteVolume("vg1/c");
    expect(await remote.info()).toEqual(await local.info());
    expect(await remote.check()).toMatchObject({ ok: true, faults: [] });
  });

  it("streams a diff of many separate ranges in order", async () => {
    await remote.createVolume({ volumeGroup: "vg1", name: "sparse", sizeBytes: 64 * MiB, sectorSize: 4096 });
    await remote.createSnapshot({ volumeGroup: "vg1", name: "sparse-base", sourceVolumeId: "vg1/sparse" });
    // One byte in every other 64 KiB chunk: 128 separate ranges.
    for (let chunk = 0; chunk < 256; chunk += 2) await remote.write("vg1/sparse", chunk * 65536, Buffer.alloc(512, 1));
    const diff = await remote.diff("vg1/sparse-base", "vg1/sparse");
    expect(diff.ranges).toHaveLength(128);
    expect(diff).toEqual(await local.diff("vg1/sparse-base", "vg1/sparse"));
  });

  it("exports disk snapshots, restores from one and diffs members, as the engine does", async () => {
    await remote.createVolume({ volumeGroup: "vg1", name: "src", sizeBytes: 4 * MiB });
    const first = Buffer.alloc(MiB, 0x11);
    await remote.write("vg1/src", 0, first);
    await remote.createSnapshot({ volumeGroup: "vg1", name: "src-1", sourceVolumeId: "vg1/src" });
    const started = await remote.exportDiskSnapshot({ name: "disk-1", sourceId: "vg1/src-1" });
    expect(started).toMatchObject({ name: "disk-1", exportedFrom: "vg1/src-1", incremental: false, previousMemberId: null });
    const completed = await remote.waitForDiskSnapshot("disk-1");
    expect(completed.completionPercent).toBe(100);
    expect(completed).toEqual(await local.getDiskSnapshot("disk-1"));

    await remote.write("vg1/src", 2 * MiB, Buffer.alloc(64 * 1024, 0x22));
    await remote.createSnapshot({ volumeGroup: "vg1", name: "src-2", sourceVolumeId: "vg1/src" });
    await remote.exportDiskSnapshot({ name: "disk-2", sourceId: "vg1/src-2" });
    const second = await remote.waitForDiskSnapshot("disk-2");
    expect(second).toMatchObject({ incremental: true, previousMemberId: completed.memberId });
    expect(await remote.listDiskSnapshots({ sourceId: "vg1/src" })).toEqual(await local.listDiskSnapshots({ sourceId: "vg1/src" }));
    expect(await remote.diffDiskSnapshots("disk-1", "disk-2")).toEqual(await local.diffDiskSnapshots("disk-1", "disk-2"));

    const restored = await remote.createVolume({ volumeGroup: "vg1", name: "restored", sizeBytes: 4 * MiB, source: { kind: "diskSnapshot", id: "disk-1" } });
    expect(restored.creationData).toMatchObject({ kind: "diskSnapshot", sourceId: "disk-1" });
    await remote.waitForHydration("vg1/restored");
    expect(await remote.getVolume("vg1/restored")).toEqual(await local.getVolume("vg1/restored"));
    expect((await remote.getVolume("vg1/restored")).hydration).toMatchObject({ state: "complete", completionPercent: 100 });
    expect((await remote.read("vg1/restored", 0, MiB)).equals(first)).toBe(true);

    await remote.deleteDiskSnapshot("disk-1");
    const missing = await remote.getDiskSnapshot("disk-1").catch((e: unknown) => e);
    expect((missing as EsanError).code).toBe("NotFound");
  });

  it.each([
    { name: "an unknown volume", call: (c: GrpcSanClient) => c.getVolume("vg1/nope"), type: NotFoundError, code: "NotFound" },
    { name: "a bad name", call: (c: GrpcSanClient) => c.createVolumeGroup("Bad_Name"), type: InvalidArgumentError, code: "InvalidArgument" },
    { name: "a shrink", call: (c: GrpcSanClient) => c.resizeVolume("vg1/a", 1 * MiB), type: EsanError, code: "FailedPrecondition" },
    { name: "a write past the end", call: (c: GrpcSanClient) => c.write("vg1/a", 8 * MiB, Buffer.alloc(1)), type: EsanError, code: "OutOfRange" },
    { name: "an oversized read", call: (c: GrpcSanClient) => c.read("vg1/a", 0, MAX_IO_BYTES + 512), type: InvalidArgumentError, code: "InvalidArgument" },
  ])("rebuilds the engine's error for $name, with the same sentence", async ({ call, type, code }) => {
    const remoteError = await call(remote).then(() => null, (err: unknown) => err);
    expect(remoteError).toBeInstanceOf(type);
    expect((remoteError as EsanError).code).toBe(code);
    const localError = await call(local as unknown as GrpcSanClient).then(() => null, (err: unknown) => err);
    expect((remoteError as Error).message).toBe((localError as Error).message);
  });

  it("carries the limit of a snapshot count error", async () => {
    await remote.createVolume({ volumeGroup: "vg1", name: "lim", sizeBytes: MiB });
    for (const name of ["l1", "l2", "l3"]) await remote.createSnapshot({ volumeGroup: "vg1", name, sourceVolumeId: "vg1/lim" });
    const err = await remote.createSnapshot({ volumeGroup: "vg1", name: "l4", sourceVolumeId: "vg1/lim" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SnapshotCountExceededError);
    expect((err as SnapshotCountExceededError).limit).toBe(3);
  });

  it("refuses TCP calls without the token, or with a wrong one, as Unauthenticated; accepts the right one", async () => {
    const anonymous = GrpcSanClient.connect(tcpAddress);
    const wrong = GrpcSanClient.connect(tcpAddress, { token: "not-the-token" });
    const right = GrpcSanClient.connect(tcpAddress, { token: TOKEN });
    try {
      for (const client of [anonymous, wrong]) {
        const err = await client.listVolumeGroups().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SanApiError);
        expect((err as SanApiError).code).toBe("Unauthenticated");
      }
      expect((await right.listVolumeGroups()).map((g) => g.name)).toEqual(["vg1"]);
    } finally {
      await Promise.all([anonymous.close(), wrong.close(), right.close()]);
    }
  });

  it("attaches idempotently over the API and never logs the key or the token", async () => {
    const first = await remote.attach("vg1/a", "node-1");
    expect(first).toMatchObject({ volumeId: "vg1/a", nodeId: "node-1", exportName: "vg1/a", nbdAddress: "tcp://san.example:10809" });
    expect(first.pskKey).toMatch(/^[0-9a-f]{64}$/);
    expect(await remote.attach("vg1/a", "node-1")).toEqual(first);
    expect(await remote.listAttachments()).toEqual([{ volumeId: "vg1/a", nodeId: "node-1", pskIdentity: first.pskIdentity, createdAt: first.createdAt }]);
    const refused = await remote.deleteVolume("vg1/a").catch((e: unknown) => e);
    expect((refused as EsanError).code).toBe("FailedPrecondition");
    expect(await remote.detach("vg1/a", "node-1")).toEqual({ detached: true });
    expect(await remote.detach("vg1/a", "node-1")).toEqual({ detached: false });

    const log = logLines.join("");
    expect(log).toContain('"rpc":"Attach"');
    expect(log).toContain('"nodeId":"node-1"');
    expect(log).not.toContain(first.pskKey);
    expect(log).not.toContain(TOKEN);
    expect(log).toContain("Unauthenticated");
  });

  it("sends no stack trace to the client for an unexpected error", async () => {
    const broken = new SanApiServer({
      client: { ...local, info: () => Promise.reject(new Error("secret internal detail at /src/x.ts:1")) } as unknown as LocalSanClient,
      logger: pino({ level: "silent" }),
    });
    const socket = await broken.listen({ kind: "unix", path: `${temp.dir}/broken.sock` });
    const client = GrpcSanClient.connect(formatEndpoint(socket));
    try {
      const err = await client.info().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SanApiError);
      expect((err as SanApiError).code).toBe("Internal");
      expect((err as Error).message).toMatch(/^The SAN service failed unexpectedly while handling request r\d+; its log has the details\.$/);
    } finally {
      await client.close();
      await broken.shutdown(1000);
    }
  });
});
