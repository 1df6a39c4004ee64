// nbdcopy copies 1 GiB into a volume and back out (4 connections, CAN_MULTI_CONN), compared byte for byte.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireClients, runClientOk } from "../support/nbd-clients.ts";
import { type NbdFixture, startNbdFixture } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
let f: NbdFixture;
let work: string;
let source: string;
let dataBlocks = 0;

/** Block i of the 1 GiB source: a hole, zeroes written out, or random data, in a fixed pseudo-random pattern. */
function blockKind(i: number): "hole" | "zeroes" | "data" {
  const h = (i * 2654435761) >>> 0;
  if (h % 5 === 0) return "hole";
  if (h % 7 === 0) return "zeroes";
  return "data";
}

beforeAll(async () => {
  requireClients(["nbdcopy"]);
  f = await startNbdFixture({ san: { capacityBytes: 2 * GiB } });
  f.san.createVolume({ volumeGroup: "vg", name: "copy", sizeBytes: GiB });
  work = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "esan-nbdcopy-"));
  source = path.join(work, "source.raw");
  const fd = fs.openSync(source, "w");
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < GiB / MiB; i++) {
    const kind = blockKind(i);
    if (kind === "hole") continue;
    if (kind === "zeroes") block.fill(0);
    else {
      crypto.randomFillSync(block);
      dataBlocks++;
    }
    fs.writeSync(fd, block, 0, MiB, i * MiB);
  }
  fs.ftruncateSync(fd, GiB);
  fs.closeSync(fd);
}, 60_000);

afterAll(async () => {
  await f.teardown();
  fs.rmSync(work, { recursive: true, force: true });
});

/** Compares two files in 16 MiB pieces; returns the first differing offset or -1. */
function firstDifference(a: string, b: string): number {
  const fa = fs.openSync(a, "r");
  const fb = fs.openSync(b, "r");
  try {
    const ba = Buffer.alloc(16 * MiB);
    const bb = Buffer.alloc(16 * MiB);
    for (let offset = 0; offset < GiB; offset += ba.byteLength) {
      const na = fs.readSync(fa, ba, 0, ba.byteLength, offset);
      const nb = fs.readSync(fb, bb, 0, bb.byteLength, offset);
      if (na !== nb) return offset + Math.min(na, nb);
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) {
        for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return offset + i;
      }
    }
    return -1;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

test("1 GiB in and out with nbdcopy, identical byte for byte, zero blocks left unallocated", async () => {
  const uri = f.nbd.uri("vg/copy");
  await runClientOk("nbdcopy", [source, uri], { timeoutMs: 60_000 });
  const out = path.join(work, "out.raw");
  await runClientOk("nbdcopy", [uri, out], { timeoutMs: 60_000 });
  expect(fs.statSync(out).size).toBe(GiB);
  expect(firstDifference(source, out)).toBe(-1);
  // nbdcopy turns holes and zero blocks into zero requests, which unmap whole chunks.
  const allocated = f.san.allocatedRanges("vg/copy").reduce((sum, r) => sum + r.length, 0);
  expect(allocated).toBe(dataBlocks * MiB);
}, 90_000);
