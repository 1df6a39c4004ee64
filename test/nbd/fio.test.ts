// fio's nbd engine (libnbd, several connections when CAN_MULTI_CONN) writing with crc32c verification.
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireClients, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["fio"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "fio", sizeBytes: 64 * MiB });
});

afterAll(async () => {
  await f.teardown();
});

interface FioJob {
  error: number;
  write: { io_bytes: number };
  read: { io_bytes: number };
}

async function fio(args: string[]): Promise<FioJob[]> {
  const { stdout } = await runClientOk(
    "fio",
    ["--ioengine=nbd", `--uri=${f.nbd.uri("vg/fio")}`, "--output-format=json", "--verify_fatal=1", "--exitall_on_error=1", "--verify_state_save=0", ...args],
    { timeoutMs: 60_000 },
  );
  // The nbd engine prints "fio: connected to NBD server" before the JSON.
  return (JSON.parse(stdout.slice(stdout.indexOf("{"))) as { jobs: FioJob[] }).jobs;
}

test("random 4k writes at queue depth 32 verify with crc32c", async () => {
  const jobs = await fio(["--name=rw4k", "--rw=randwrite", "--bs=4k", "--size=32M", "--iodepth=32", "--verify=crc32c", "--do_verify=1"]);
  expect(jobs[0]!.error).toBe(0);
  expect(jobs[0]!.write.io_bytes).toBe(32 * MiB);
  expect(jobs[0]!.read.io_bytes).toBe(32 * MiB);
});

test("mixed block sizes with two jobs on separate ranges verify with crc32c", async () => {
  const jobs = await fio([
    "--name=a", "--offset=32M", "--size=16M", "--rw=randwrite", "--bsrange=4k-256k", "--iodepth=16", "--verify=crc32c", "--do_verify=1",
    "--name=b", "--offset=48M", "--size=16M", "--rw=write", "--bs=1M", "--iodepth=4", "--verify=crc32c", "--do_verify=1",
  ]);
  expect(jobs.map((j) => j.error)).toEqual([0, 0]);
});
