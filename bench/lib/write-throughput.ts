// Section 3 of `npm run bench:storage`: write throughput against a plain preallocated file, in the same run.

import fs from "node:fs";
import path from "node:path";

import { type RandomInt, sampleDistinct, seededRandomInt, shuffle } from "./rng.ts";
import { type BenchConfig, createSan, GiB, MiB, progress, randomPayload, timeMs, VOLUME_GROUP } from "./storage-common.ts";
import { formatBytes, formatMs, formatNumber, formatRatio, markdownTable } from "./table.ts";

interface WritePattern {
  name: string;
  writeBytes: number;
  regionBytes: number;
  offsets: number[];
}

interface ThroughputRow {
  pattern: string;
  phase: string;
  bytes: number;
  writes: number;
  esanMs: number;
  esanFlushMs: number;
  plainMs: number;
}

function writePatterns(cfg: BenchConfig, chunkBytes: number, random: RandomInt): WritePattern[] {
  const sequential = Array.from({ length: cfg.sequentialBytes / cfg.sequentialWriteBytes }, (_, i) => i * cfg.sequentialWriteBytes);
  // One random write per chunk, so in the first pass every write lands on a chunk that was never written.
  const blocks = chunkBytes / cfg.randomWriteBytes;
  const randomOffsets = sampleDistinct(random, cfg.randomWrites, cfg.randomWrites).map((c) => c * chunkBytes + random(blocks) * cfg.randomWriteBytes);
  return [
    { name: `${formatBytes(cfg.sequentialWriteBytes)} sequential`, writeBytes: cfg.sequentialWriteBytes, regionBytes: cfg.sequentialBytes, offsets: sequential },
    { name: `${formatBytes(cfg.randomWriteBytes)} random`, writeBytes: cfg.randomWriteBytes, regionBytes: cfg.randomWrites * chunkBytes, offsets: randomOffsets },
  ];
}

/** Fills a plain file of `bytes` and fsyncs it, so later writes overwrite allocated blocks as a preallocated disk image would. */
function preallocatePlainFile(file: string, bytes: number, payload: Buffer): number {
  const fd = fs.openSync(file, "w+");
  for (let offset = 0; offset < bytes; offset += payload.length) fs.writeSync(fd, payload, 0, Math.min(payload.length, bytes - offset), offset);
  fs.fsyncSync(fd);
  return fd;
}

export function benchWrites(dir: string, cfg: BenchConfig): string {
  fs.mkdirSync(dir, { recursive: true });
  const san = createSan(path.join(dir, "san"), 16 * GiB);
  const random = seededRandomInt(3);
  const rows: ThroughputRow[] = [];
  try {
    const chunkBytes = san.info().chunkSizeBytes;
    const payload = randomPayload(cfg.sequentialWriteBytes);
    for (const pattern of writePatterns(cfg, chunkBytes, random)) {
      const volume = san.createVolume({ volumeGroup: VOLUME_GROUP, name: `writes-${pattern.writeBytes}`, sizeBytes: pattern.regionBytes });
      const plainFile = path.join(dir, `plain-${pattern.writeBytes}.img`);
      const fd = preallocatePlainFile(plainFile, pattern.regionBytes, payload);
      const data = payload.subarray(0, pattern.writeBytes);
      try {
        for (const phase of ["fresh chunks", "owned chunks", "chunks shared with a snapshot"]) {
          if (phase === "chunks shared with a snapshot") san.createSnapshot({ volumeGroup: VOLUME_GROUP, name: `writes-${pattern.writeBytes}-snap`, sourceVolumeId: volume.id });
          // Each pass reorders the offsets; the sequential pattern keeps ascending order.
          const offsets = pattern.writeBytes === cfg.randomWriteBytes ? shuffle(random, [...pattern.offsets]) : pattern.offsets;
          let esanFlushMs = 0;
          const esanMs = timeMs(() => {
            for (const offset of offsets) san.write(volume.id, offset, data);
            esanFlushMs = timeMs(() => san.flush());
          });
          const plainMs = timeMs(() => {
            for (const offset of offsets) fs.writeSync(fd, data, 0, data.length, offset);
            fs.fsyncSync(fd);
          });
          rows.push({ pattern: pattern.name, phase, bytes: offsets.length * data.length, writes: offsets.length, esanMs, esanFlushMs, plainMs });
          progress(`write: ${pattern.name} to ${phase}: esan ${formatMs(esanMs)}, plain ${formatMs(plainMs)}`);
        }
      } finally {
        fs.closeSync(fd);
        fs.rmSync(plainFile, { force: true });
      }
    }
  } finally {
    san.close();
  }

  const mibPerSecond = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
  const iops = (writes: number, ms: number): number => writes / (ms / 1000);
  const owned = rows
    .filter((r) => r.phase === "owned chunks")
    .map((r) => {
      const ratio = r.plainMs / r.esanMs;
      return `${r.pattern} ${formatRatio(ratio)} (${ratio >= 0.8 ? "met" : "MISSED"})`;
    });
  const table = markdownTable(
    ["writes", "to", "total", "esan MiB/s", "esan IOPS", "of which flush", "plain MiB/s", "plain IOPS", "esan/plain"],
    rows.map((r) => [
      r.pattern,
      r.phase,
      `${formatNumber(r.writes)} × ${formatBytes(r.bytes / r.writes)}`,
      formatNumber(mibPerSecond(r.bytes, r.esanMs), 1),
      formatNumber(iops(r.writes, r.esanMs)),
      formatMs(r.esanFlushMs),
      formatNumber(mibPerSecond(r.bytes, r.plainMs), 1),
      formatNumber(iops(r.writes, r.plainMs)),
      formatRatio(r.plainMs / r.esanMs),
    ]),
    ["left", "left"],
  );
  return [
    "### Write throughput against a plain preallocated file",
    "",
    "Each pass writes the same offsets through `san.write` and then calls `san.flush()`, and right after writes them with " +
      "`fs.writeSync` into a plain file of the same size that was filled and fsynced beforehand, then `fsync`s it; both timings " +
      "include the flush. The random pattern puts one write in each of its chunks at a random 4 KiB block, in a new order each " +
      'pass. "fresh" chunks were never written, "owned" ones were written by the previous pass with no snapshot since, and ' +
      '"shared" ones are held by a snapshot taken just before (copy-on-write). esan/plain is throughput relative to the plain ' +
      "file (> 1 is faster). Target: owned-chunk writes ≥ 0.8×. Two things differ from the plain file by design: writes to " +
      "fresh or shared chunks go to new extents, which grow the extents file instead of overwriting allocated blocks, and " +
      "the extents file holds only the blocks written so far (sparse), which the kernel overwrites somewhat faster than the " +
      "fully written plain file.",
    "",
    table,
    "",
    `Owned-chunk esan/plain, target ≥ 0.8×: ${owned.join("; ")}.`,
  ].join("\n");
}
