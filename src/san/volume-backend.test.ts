import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { NbdError } from "../nbd/backend.ts";
import { CapacityExceededError, EsanError, NotFoundError, OutOfRangeError, ReadOnlyError } from "../storage/errors.ts";
import { San } from "../storage/san.ts";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { extentsInWindow, nbdErrorFromEngine, VolumeBackend, VOLUME_MAXIMUM_BLOCK_BYTES } from "./volume-backend.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let san: San;
let cleanup: () => void;

beforeEach(() => {
  const temp = tempDataDir("esan-volume-backend");
  cleanup = temp.cleanup;
  san = San.create(temp.dir, { capacityBytes: 64 * MiB, chunkSizeBytes: 64 * KiB });
  san.createVolumeGroup("vg");
  san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 4 * MiB, sectorSize: 4096 });
});

afterEach(() => {
  san.close();
  cleanup();
});

/** Reads `length` bytes through the backend into a fresh buffer. */
async function readBack(backend: VolumeBackend, offset: number, length: number): Promise<Buffer> {
  const target = Buffer.alloc(length);
  await backend.pread(offset, target);
  return target;
}

const errnoOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as NbdError).nbdErrno;
  }
  return undefined;
};

describe("VolumeBackend", () => {
  test("a volume exports read-write with its geometry", async () => {
    const backend = VolumeBackend.open(san, "vg/v");
    expect(backend).toMatchObject({ sizeBytes: 4 * MiB, minimumBlockSize: 4096, preferredBlockSize: 64 * KiB, readOnly: false });
    expect(backend.maximumBlockSize).toBe(VOLUME_MAXIMUM_BLOCK_BYTES);
    expect([backend.canTrim(), backend.canZero(), backend.canFastZero(), backend.canFua(), backend.canFlush(), backend.canExtents(), backend.canMultiConn()]).toEqual(
      Array(7).fill(true),
    );
    await backend.pwrite(8192, Buffer.alloc(4096, 0xab), { fua: true });
    expect((await readBack(backend, 8192, 4096)).equals(Buffer.alloc(4096, 0xab))).toBe(true);
    expect(san.read("vg/v", 8192, 4096)[0]).toBe(0xab);
  });

  test("a snapshot exports read-only and refuses writes with EPERM", async () => {
    san.write("vg/v", 0, Buffer.alloc(64 * KiB, 1));
    san.createSnapshot({ volumeGroup: "vg", name: "s", sourceVolumeId: "vg/v" });
    const backend = VolumeBackend.open(san, "vg/s");
    expect(backend.readOnly).toBe(true);
    expect(errnoOf(() => backend.pwrite(0, Buffer.alloc(4096), { fua: false }))).toBe("EPERM");
    expect((await readBack(backend, 0, 4096))[0]).toBe(1);
  });

  test("unknown images are ENOENT at open", () => {
    expect(errnoOf(() => VolumeBackend.open(san, "vg/nope"))).toBe("ENOENT");
    expect(errnoOf(() => VolumeBackend.open(san, "not an id"))).toBe("ENOENT");
  });

  test("a volume deleted under an open export answers EIO", () => {
    const backend = VolumeBackend.open(san, "vg/v");
    san.deleteVolume("vg/v");
    expect(errnoOf(() => backend.pread(0, Buffer.alloc(4096)))).toBe("EIO");
  });

  test("FAST_ZERO with NO_HOLE is refused with ENOTSUP before touching data", async () => {
    const backend = VolumeBackend.open(san, "vg/v");
    await backend.pwrite(0, Buffer.alloc(64 * KiB, 9), { fua: false });
    expect(errnoOf(() => backend.zero(0, 64 * KiB, { fua: false, noHole: true, fastZero: true }))).toBe("ENOTSUP");
    expect((await readBack(backend, 0, 4096))[0]).toBe(9);
    await backend.zero(0, 64 * KiB, { fua: false, noHole: false, fastZero: true });
    expect(backend.extents(0, 64 * KiB)).toEqual([{ offset: 0, length: 64 * KiB, hole: true, zero: true }]);
  });

  test("extents clip the engine's allocation to the window", async () => {
    const backend = VolumeBackend.open(san, "vg/v");
    await backend.pwrite(128 * KiB, Buffer.alloc(4096, 1), { fua: false });
    await backend.pwrite(256 * KiB, Buffer.alloc(128 * KiB, 1), { fua: false });
    expect(backend.extents(100 * KiB, 200 * KiB)).toEqual([
      { offset: 100 * KiB, length: 28 * KiB, hole: true, zero: true },
      { offset: 128 * KiB, length: 64 * KiB, hole: false, zero: false },
      { offset: 192 * KiB, length: 64 * KiB, hole: true, zero: true },
      { offset: 256 * KiB, length: 44 * KiB, hole: false, zero: false },
    ]);
    await backend.trim(128 * KiB, 64 * KiB, { fua: false });
    expect(backend.extents(128 * KiB, 64 * KiB)).toEqual([{ offset: 128 * KiB, length: 64 * KiB, hole: true, zero: true }]);
  });

  test("extents ask the engine about the window only, for volumes and snapshots alike", () => {
    san.write("vg/v", 0, Buffer.alloc(64 * KiB, 1));
    san.write("vg/v", 3 * MiB, Buffer.alloc(64 * KiB, 1));
    san.createSnapshot({ volumeGroup: "vg", name: "s", sourceVolumeId: "vg/v" });
    const windows: [number, number][] = [];
    const original = san.allocatedRangesIn.bind(san);
    san.allocatedRangesIn = (id: string, offset: number, length: number) => {
      windows.push([offset, length]);
      return original(id, offset, length);
    };
    for (const id of ["vg/v", "vg/s"]) {
      expect(VolumeBackend.open(san, id).extents(MiB, 3 * MiB)).toEqual([
        { offset: MiB, length: 2 * MiB, hole: true, zero: true },
        { offset: 3 * MiB, length: 64 * KiB, hole: false, zero: false },
        { offset: 3 * MiB + 64 * KiB, length: MiB - 64 * KiB, hole: true, zero: true },
      ]);
    }
    expect(windows).toEqual([
      [MiB, 3 * MiB],
      [MiB, 3 * MiB],
    ]);
  });
});

test.each<[EsanError, string]>([
  [new OutOfRangeError("x"), "EINVAL"],
  [new ReadOnlyError("x"), "EPERM"],
  [new CapacityExceededError("x"), "ENOSPC"],
  [new NotFoundError("x"), "EIO"],
  [new EsanError("Corrupt", "x"), "EIO"],
])("engine %s maps to %s", (err, errno) => {
  const mapped = nbdErrorFromEngine(err, "op");
  expect(mapped).toBeInstanceOf(NbdError);
  expect((mapped as NbdError).nbdErrno).toBe(errno);
  expect((mapped as NbdError).cause).toBe(err);
});

test("a full SAN answers ENOSPC and keeps the data already written", async () => {
  const backend = VolumeBackend.open(san, "vg/v");
  san.createVolume({ volumeGroup: "vg", name: "big", sizeBytes: 60 * MiB });
  const big = VolumeBackend.open(san, "vg/big");
  await big.pwrite(0, Buffer.alloc(32 * MiB, 2), { fua: false });
  await backend.pwrite(0, Buffer.alloc(64 * KiB, 3), { fua: false });
  // The snapshot shares big's 32 MiB, so overwriting all of it needs 32 MiB more than the 64 MiB SAN has left.
  san.createSnapshot({ volumeGroup: "vg", name: "hold", sourceVolumeId: "vg/big" });
  expect(errnoOf(() => big.pwrite(0, Buffer.alloc(32 * MiB, 4), { fua: false }))).toBe("ENOSPC");
  expect((await readBack(big, 0, 4096))[0]).toBe(2);
  expect((await readBack(backend, 0, 4096))[0]).toBe(3);
});

test("extentsInWindow fills the gaps with holes", () => {
  const ranges = [
    { offset: 0, length: 100 },
    { offset: 200, length: 100 },
    { offset: 500, length: 100 },
  ];
  expect(extentsInWindow(ranges, 250, 550)).toEqual([
    { offset: 250, length: 50, hole: false, zero: false },
    { offset: 300, length: 200, hole: true, zero: true },
    { offset: 500, length: 50, hole: false, zero: false },
  ]);
  expect(extentsInWindow(ranges, 600, 700)).toEqual([{ offset: 600, length: 100, hole: true, zero: true }]);
  expect(extentsInWindow([], 0, 10)).toEqual([{ offset: 0, length: 10, hole: true, zero: true }]);
  expect(extentsInWindow(ranges, 10, 10)).toEqual([]);
});

test("a volume restored from a disk snapshot is served while it hydrates, through the engine's async I/O", async () => {
  san.write("vg/v", 0, Buffer.alloc(256 * KiB, 0x42));
  san.exportDiskSnapshot({ name: "d1", sourceId: "vg/v" });
  await san.waitForDiskSnapshot("d1");
  const restored = san.createVolume({ volumeGroup: "vg", name: "r", sizeBytes: 4 * MiB, source: { kind: "diskSnapshot", id: "d1" } });
  expect(restored.hydration?.state).toBe("hydrating");
  const backend = VolumeBackend.open(san, "vg/r");
  expect(backend.canFastZero()).toBe(false);
  const target = Buffer.alloc(4096);
  const read = backend.pread(0, target);
  expect(read).toBeInstanceOf(Promise);
  await read;
  expect(target.equals(Buffer.alloc(4096, 0x42))).toBe(true);
  await backend.pwrite(64 * KiB, Buffer.alloc(4096, 0x43), { fua: false });
  await backend.zero(128 * KiB, 64 * KiB, { fua: false, noHole: false, fastZero: false });
  await san.waitForHydration("vg/r");
  expect((await readBack(backend, 64 * KiB, 4096)).equals(Buffer.alloc(4096, 0x43))).toBe(true);
  expect((await readBack(backend, 128 * KiB, 4096)).equals(Buffer.alloc(4096))).toBe(true);
  expect(san.read("vg/r", 0, 4096)[0]).toBe(0x42);
  await expect(backend.pread(4 * MiB, Buffer.alloc(4096))).rejects.toMatchObject({ nbdErrno: "EINVAL" });
});
