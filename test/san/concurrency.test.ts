// Several clients at once against one `esan san serve`: CLI processes writing and snapshotting in parallel, and 50
// parallel snapshot creations on one volume, of which exactly the rate limit's 7 succeed.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnapshotOperationRateExceededError } from "../../src/storage/errors.ts";
import { GrpcSanClient } from "../../src/san/grpc-san-client.ts";
import { freshSan, killServers, MiB, run, runJson, serve, type Served } from "./support.ts";

describe("concurrent clients of one SAN service", () => {
  let san: Awaited<ReturnType<typeof freshSan>>;
  let server: Served;

  beforeAll(async () => {
    san = await freshSan(["--capacity", "1GiB"]);
    server = await serve(san.dataDir);
    await runJson(["volume-group", "create", "vg1", "--san", server.api]);
  });

  afterAll(async () => {
    await killServers();
    san.cleanup();
  });

  it("serves parallel writes and snapshots from several CLI processes, every byte where it was written", { timeout: 300_000 }, async () => {
    await runJson(["volume", "create", "vg1/shared", "--size", "16MiB", "--san", server.api]);
    await runJson(["volume", "create", "vg1/other", "--size", "4MiB", "--san", server.api]);
    const pieces = Array.from({ length: 6 }, (_, i) => ({ offset: i * 2 * MiB + 4096 * i, data: randomBytes(MiB + 12_345) }));
    const other = randomBytes(3 * MiB);
    const results = await Promise.all([
      ...pieces.map((piece) => run(["volume", "write", "vg1/shared", "--offset", String(piece.offset), "--san", server.api], { input: piece.data })),
      run(["volume", "write", "vg1/other", "--san", server.api], { input: other }),
      run(["snapshot", "create", "vg1/mid-1", "--source", "vg1/shared", "--san", server.api]),
      run(["snapshot", "create", "vg1/mid-2", "--source", "vg1/other", "--san", server.api]),
    ]);
    for (const result of results) expect(result.code, result.stderr).toBe(0);

    const volume = await run(["volume", "read", "vg1/shared", "--san", server.api]);
    for (const piece of pieces) expect(volume.stdout.subarray(piece.offset, piece.offset + piece.data.length).equals(piece.data)).toBe(true);
    expect((await run(["volume", "read", "vg1/other", "--san", server.api])).stdout.subarray(0, other.length).equals(other)).toBe(true);
    // The CLI writes in 1 MiB calls; a snapshot taken meanwhile holds each call's bytes entirely or not at all.
    const snapshot = (await run(["snapshot", "read", "vg1/mid-1", "--san", server.api])).stdout;
    expect(snapshot.length).toBe(16 * MiB);
    for (const piece of pieces) {
      for (let start = 0; start < piece.data.length; start += MiB) {
        const expected = piece.data.subarray(start, Math.min(start + MiB, piece.data.length));
        const seen = snapshot.subarray(piece.offset + start, piece.offset + start + expected.length);
        expect(seen.equals(expected) || seen.equals(Buffer.alloc(expected.length))).toBe(true);
      }
    }
    expect((await runJson(["check", "--san", server.api])).ok).toBe(true);
  });

  it("lets exactly 7 of 50 parallel snapshot creations on one volume through, from several clients", { timeout: 300_000 }, async () => {
    await runJson(["volume", "create", "vg1/rated", "--size", "1MiB", "--san", server.api]);
    const clients = Array.from({ length: 4 }, () => GrpcSanClient.connect(server.api));
    try {
      const viaApi = Array.from({ length: 40 }, (_, i) =>
        clients[i % clients.length]!.createSnapshot({ volumeGroup: "vg1", name: `api-${i}`, sourceVolumeId: "vg1/rated" }).then(
          () => "ok",
          (err: unknown) => err,
        ),
      );
      const viaCli = Array.from({ length: 10 }, (_, i) =>
        run(["snapshot", "create", `vg1/cli-${i}`, "--source", "vg1/rated", "--san", server.api]).then((r) => (r.code === 0 ? "ok" : r.stderr)),
      );
      const outcomes = await Promise.all([...viaApi, ...viaCli]);
      expect(outcomes.filter((o) => o === "ok")).toHaveLength(7);
      const refusals = outcomes.filter((o) => o !== "ok");
      for (const refusal of refusals) {
        if (typeof refusal === "string") expect(refusal).toMatch(/^SnapshotOperationRateExceeded: .*vg1\/rated/);
        else {
          expect(refusal).toBeInstanceOf(SnapshotOperationRateExceededError);
          expect((refusal as SnapshotOperationRateExceededError).limit).toBe(7);
          expect((refusal as SnapshotOperationRateExceededError).retryAfterMs).toBeGreaterThan(0);
        }
      }
      const listed = await clients[0]!.listSnapshots({ sourceVolumeId: "vg1/rated" });
      expect(listed.entries).toHaveLength(7);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});
