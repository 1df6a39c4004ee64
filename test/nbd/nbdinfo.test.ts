// nbdinfo against the server: export details, --list, --json, and an export that does not exist.
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireClients, runClient, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["nbdinfo"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 64 * MiB });
  f.san.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: 8 * MiB, sectorSize: 4096 });
  f.san.createSnapshot({ volumeGroup: "vg", name: "a-snap", sourceVolumeId: "vg/a" });
});

afterAll(async () => {
  await f.teardown();
});

test("shows a volume's size, flags, contexts and block sizes", async () => {
  const { stdout } = await runClientOk("nbdinfo", [f.nbd.uri("vg/a")]);
  expect(stdout).toContain("newstyle-fixed without TLS, using structured packets");
  expect(stdout).toContain(`export-size: ${64 * MiB}`);
  expect(stdout).toMatch(/base:allocation/);
  for (const line of ["is_read_only: false", "can_flush: true", "can_fua: true", "can_trim: true", "can_zero: true", "can_fast_zero: true", "can_multi_conn: true", "can_df: true"]) {
    expect(stdout).toContain(line);
  }
  expect(stdout).toContain("block_size_minimum: 512");
  expect(stdout).toContain("block_size_preferred: 65536");
  expect(stdout).toContain(`block_size_maximum: ${32 * MiB}`);
});

test("--json reports the 4096-byte sector size of a 4K volume", async () => {
  const { stdout } = await runClientOk("nbdinfo", ["--json", f.nbd.uri("vg/b")]);
  const info = JSON.parse(stdout) as { exports: { "export-name": string; "export-size": number; block_size_minimum: number; is_read_only: boolean }[] };
  expect(info.exports[0]).toMatchObject({ "export-name": "vg/b", "export-size": 8 * MiB, block_size_minimum: 4096, is_read_only: false });
});

test("--list --json shows every volume and snapshot with its description", async () => {
  const { stdout } = await runClientOk("nbdinfo", ["--list", "--json", f.nbd.uri("")]);
  const info = JSON.parse(stdout) as { exports: { "export-name": string; description?: string; is_read_only: boolean }[] };
  const names = info.exports.map((e) => e["export-name"]).sort();
  expect(names).toEqual(["vg/a", "vg/a-snap", "vg/b"]);
  expect(info.exports.find((e) => e["export-name"] === "vg/a-snap")).toMatchObject({ description: "snapshot vg/a-snap of vg/a", is_read_only: true });
});

test("--size prints the size alone", async () => {
  const { stdout } = await runClientOk("nbdinfo", ["--size", f.nbd.uri("vg/a")]);
  expect(stdout.trim()).toBe(String(64 * MiB));
});

test("an export that does not exist is refused with a message, and the server carries on", async () => {
  const result = await runClient("nbdinfo", [f.nbd.uri("vg/missing")]);
  expect(result.code).not.toBe(0);
  // libnbd words NBD_REP_ERR_UNKNOWN as ENOENT.
  expect(result.stderr).toMatch(/No such file or directory for export: vg\/missing/);
  await runClientOk("nbdinfo", ["--size", f.nbd.uri("vg/a")]);
});
