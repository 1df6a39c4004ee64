// Graceful shutdown of `esan san serve`: SIGTERM lets the calls in flight finish, commits every acknowledged write
// (no flush asked for), and exits 0; reopening the directory directly finds the data.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcSanClient } from "../../src/san/grpc-san-client.ts";
import { LocalSanClient } from "../../src/san/local-san-client.ts";
import { SanApiError } from "../../src/san/errors.ts";
import { freshSan, killServers, MiB, run, serve } from "./support.ts";

describe("esan san serve on SIGTERM", () => {
  let san: Awaited<ReturnType<typeof freshSan>>;

  beforeAll(async () => {
    san = await freshSan(["--capacity", "1GiB"]);
  });

  afterAll(async () => {
    await killServers();
    san.cleanup();
  });

  it("drains the writes in flight, commits them without a flush, and exits 0", async () => {
    const server = await serve(san.dataDir);
    const client = GrpcSanClient.connect(server.api);
    await client.createVolumeGroup("vg1");
    await client.createVolume({ volumeGroup: "vg1", name: "a", sizeBytes: 512 * MiB });

    const pattern = (i: number) => Buffer.alloc(4 * MiB, (i % 250) + 1);
    let signalled = false;
    let acknowledgedAfterSignal = 0;
    const outcomes = Array.from({ length: 64 }, (_, i) =>
      client.write("vg1/a", i * 4 * MiB, pattern(i)).then(
        () => {
          if (signalled) acknowledgedAfterSignal++;
          return "ok" as const;
        },
        (err: unknown) => err,
      ),
    );
    // Signal as soon as the service has acknowledged one write, with the rest still on their way.
    await Promise.race(outcomes);
    signalled = true;
    const exited = server.stop();
    const results = await Promise.all(outcomes);
    expect(await exited).toBe(0);
    await client.close();

    // A call the service never started may fail as Unavailable; none fails any other way.
    for (const result of results) if (result !== "ok") expect((result as SanApiError).code).toBe("Unavailable");
    expect(acknowledgedAfterSignal).toBeGreaterThan(0);
    expect(server.log()).toContain("SAN service stopped; data committed");
    for (const socket of [...server.endpoints.api, ...server.endpoints.nbd]) expect(fs.existsSync(socket.slice("unix://".length))).toBe(false);

    const reopened = LocalSanClient.open(san.dataDir);
    try {
      for (const [i, result] of results.entries()) {
        if (result !== "ok") continue;
        const data = await reopened.read("vg1/a", i * 4 * MiB, 4 * MiB);
        expect(data.equals(pattern(i)), `write ${i} was acknowledged but is not on disk`).toBe(true);
      }
      expect((await reopened.check()).ok).toBe(true);
    } finally {
      await reopened.close();
    }
  });

  it("releases the directory and its sockets, so the directory opens directly and a new service starts", async () => {
    const direct = await run(["volume", "list", "--json", "--data-dir", san.dataDir]);
    expect(direct.code, direct.stderr).toBe(0);
    const again = await serve(san.dataDir);
    expect(await again.stop()).toBe(0);
  });

  it("stops on SIGINT the same way", async () => {
    const server = await serve(san.dataDir);
    server.child.kill("SIGINT");
    expect(await server.exited).toBe(0);
  });
});
