// qemu-img and qemu-io against the server: map, compare, pattern writes and reads, write-zeroes, discard, flush.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireClients, runClient, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let f: NbdFixture;

beforeAll(async () => {
  requireClients(["qemu-img", "qemu-io"]);
  f = await startNbdFixture();
  f.san.createVolume({ volumeGroup: "vg", name: "io", sizeBytes: 16 * MiB });
  f.san.createVolume({ volumeGroup: "vg", name: "cmp", sizeBytes: 16 * MiB });
  f.san.createVolume({ volumeGroup: "vg", name: "map", sizeBytes: 32 * MiB });
});

afterAll(async () => {
  await f.teardown();
});

test("qemu-io pattern writes read back; write -z (NO_HOLE), write -z -u and discard read as zeroes", async () => {
  const { stdout } = await runClientOk("qemu-io", [
    "-f", "raw",
    "-c", "write -P 0x55 0 1M",
    "-c", "read -P 0x55 0 1M",
    "-c", "write -P 0xaa 1M 1M",
    "-c", "write -z 2M 1M",
    "-c", "read -P 0 2M 1M",
    "-c", "write -P 0x33 3M 1M",
    "-c", "write -z -u 3M 1M",
    "-c", "read -P 0 3M 1M",
    "-c", "discard 1M 512k",
    "-c", "read -P 0 1M 512k",
    "-c", "read -P 0xaa 1536k 512k",
    "-c", "write -f -P 0x77 4M 64k",
    "-c", "flush",
    f.nbd.uri("vg/io"),
  ]);
  expect(stdout).not.toMatch(/Pattern verification failed|error/i);
  expect(f.san.read("vg/io", 0, 1)[0]).toBe(0x55);
  expect(f.san.read("vg/io", 1536 * KiB, 1)[0]).toBe(0xaa);
  expect(f.san.read("vg/io", 4 * MiB, 64 * KiB).equals(Buffer.alloc(64 * KiB, 0x77))).toBe(true);
  // qemu sends write -z with NO_HOLE, so 2M..3M stays allocated; -u (may unmap) and discard unmap.
  expect(f.san.allocatedRanges("vg/io")).toEqual([
    { offset: 0, length: MiB },
    { offset: 1536 * KiB, length: 1536 * KiB },
    { offset: 4 * MiB, length: 64 * KiB },
  ]);
});

test("qemu-io in the json: syntax with image-opts", async () => {
  const { stdout } = await runClientOk("qemu-io", ["-c", "write -P 0x12 8M 128k", "-c", "read -P 0x12 8M 128k", f.nbd.qemuJson("vg/io")]);
  expect(stdout).toContain("read 131072/131072 bytes");
});

test("qemu-img compare finds a raw copy equal, and a changed byte different", async () => {
  const raw = path.join(f.nbd.dir, "cmp.raw");
  const data = Buffer.alloc(16 * MiB);
  crypto.randomFillSync(data, 0, 3 * MiB);
  crypto.randomFillSync(data, 9 * MiB, MiB);
  fs.writeFileSync(raw, data);
  f.san.write("vg/cmp", 0, data.subarray(0, 3 * MiB));
  f.san.write("vg/cmp", 9 * MiB, data.subarray(9 * MiB, 10 * MiB));
  await runClientOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", raw, f.nbd.uri("vg/cmp")]);
  f.san.write("vg/cmp", 12 * MiB, Buffer.alloc(512, 1));
  const differs = await runClient("qemu-img", ["compare", "-f", "raw", "-F", "raw", raw, f.nbd.uri("vg/cmp")]);
  expect(differs.code).toBe(1);
  expect(differs.stdout).toContain(`Content mismatch at offset ${12 * MiB}`);
});

test("qemu-img map --output=json matches the engine's allocation", async () => {
  for (const offset of [0, 5 * MiB, 5 * MiB + 64 * KiB, 20 * MiB + 512, 32 * MiB - 64 * KiB]) f.san.write("vg/map", offset, Buffer.alloc(4096, 1));
  const { stdout } = await runClientOk("qemu-img", ["map", "--output=json", "-f", "raw", f.nbd.uri("vg/map")]);
  const entries = JSON.parse(stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
  const data = entries.filter((e) => e.data).map((e) => ({ offset: e.start, length: e.length }));
  expect(data).toEqual(f.san.allocatedRanges("vg/map"));
  expect(entries.filter((e) => !e.data).every((e) => e.zero)).toBe(true);
  expect(entries.reduce((sum, e) => sum + e.length, 0)).toBe(32 * MiB);
});

test("qemu-img convert copies a volume out byte for byte", async () => {
  const out = path.join(f.nbd.dir, "out.raw");
  await runClientOk("qemu-img", ["convert", "-f", "raw", "-O", "raw", f.nbd.uri("vg/io"), out]);
  const copy = fs.readFileSync(out);
  expect(copy.equals(f.san.read("vg/io", 0, 16 * MiB))).toBe(true);
});
