// Tests of LocalSanClient: per-volume serialization of mutating calls, the per-call I/O cap, and attach/detach rules.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EsanError, InvalidArgumentError, NotFoundError } from "../storage/errors.ts";
import { San } from "../storage/san.ts";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { LocalSanClient } from "./local-san-client.ts";
import { MAX_IO_BYTES } from "./san-client.ts";

const MiB = 1024 * 1024;

describe("LocalSanClient", () => {
  let temp: ReturnType<typeof tempDataDir>;
  let client: LocalSanClient;
  const revoked: string[] = [];

  beforeEach(async () => {
    temp = tempDataDir("esan-local");
    San.create(temp.dir, { capacityBytes: 64 * MiB, limits: { snapshotRateCount: 3 } }).close();
    client = LocalSanClient.open(temp.dir, { onRevoke: (identity) => void revoked.push(identity) });
    await client.createVolumeGroup("vg");
    await client.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 8 * MiB });
  });

  afterEach(async () => {
    await client.close();
    temp.cleanup();
  });

  it("runs the writes of one volume in call order, and lets another volume's calls through meanwhile", async () => {
    await client.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: MiB });
    const order: string[] = [];
    const writes = [1, 2, 3].map((n) => client.write("vg/a", 0, Buffer.alloc(512, n)).then(() => order.push(`a${n}`)));
    const other = client.write("vg/b", 0, Buffer.alloc(512, 9)).then(() => order.push("b"));
    await Promise.all([...writes, other]);
    expect(order.filter((o) => o.startsWith("a"))).toEqual(["a1", "a2", "a3"]);
    expect((await client.read("vg/a", 0, 1))[0]).toBe(3);
  });

  it("counts parallel snapshot creations exactly against the rate limit", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => client.createSnapshot({ volumeGroup: "vg", name: `s${i}`, sourceVolumeId: "vg/a" })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as EsanError).code);
    expect(new Set(refused)).toEqual(new Set(["SnapshotOperationRateExceeded"]));
  });

  it("refuses a single read or write above the per-call cap with the same sentence the API uses", async () => {
    await expect(client.read("vg/a", 0, MAX_IO_BYTES + 1)).rejects.toThrow(InvalidArgumentError);
    await expect(client.write("vg/a", 0, Buffer.alloc(MAX_IO_BYTES + 512))).rejects.toThrow(/at most 4194304 bytes \(4 MiB\)/);
    expect((await client.read("vg/a", 0, MAX_IO_BYTES)).length).toBe(MAX_IO_BYTES);
  });

  it("attaches volumes only, refuses to delete an attached volume, and reports revoked identities", async () => {
    await client.createSnapshot({ volumeGroup: "vg", name: "snap", sourceVolumeId: "vg/a" });
    await expect(client.attach("vg/snap", "n1")).rejects.toThrow(NotFoundError);
    await expect(client.attach("vg/a", "Bad Node")).rejects.toThrow(InvalidArgumentError);

    const credential = await client.attach("vg/a", "n1");
    expect(credential.nbdAddress).toBe(`unix://${temp.dir}/nbd.sock`);
    const refusal = await client.deleteVolume("vg/a").catch((e: unknown) => e);
    expect((refusal as EsanError).code).toBe("FailedPrecondition");
    expect((refusal as Error).message).toBe(
      "Cannot delete volume vg/a: it is attached to node(s) n1. Detach it first, e.g. 'esan volume detach vg/a --node n1'.",
    );
    expect(await client.detach("vg/a", "n1")).toEqual({ detached: true });
    expect(revoked).toContain(credential.pskIdentity);
    expect(await client.detach("vg/gone", "n1")).toEqual({ detached: false });
    await expect(client.detach("not-an-id", "n1")).rejects.toThrow(InvalidArgumentError);
    await client.deleteVolume("vg/a");
  });

  it("closes idempotently and refuses calls afterwards with a typed error", async () => {
    await client.close();
    await client.close();
    await expect(client.info()).rejects.toThrow(EsanError);
    client = LocalSanClient.open(temp.dir);
  });
});
