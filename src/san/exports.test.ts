// Tests of the service's NBD exports: a PSK identity sees and opens exactly its volume, detach revokes at once, plain
// unix peers see everything (snapshots read-only) only when allowed, and TCP peers without an identity get nothing.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NbdError, type NbdPeer } from "../nbd/backend.ts";
import { San } from "../storage/san.ts";
import { tempDataDir } from "../../test/support/temp-dir.ts";
import { SanExports } from "./exports.ts";
import { LocalSanClient } from "./local-san-client.ts";

const MiB = 1024 * 1024;
const plainUnix: NbdPeer = { pskIdentity: null, transport: "unix" };
const plainTcp: NbdPeer = { pskIdentity: null, transport: "tcp" };

/** The nbdErrno of what `fn` throws. */
function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof NbdError) return err.nbdErrno;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("SanExports", () => {
  let temp: ReturnType<typeof tempDataDir>;
  let client: LocalSanClient;

  beforeEach(async () => {
    temp = tempDataDir("esan-exports");
    San.create(temp.dir, { capacityBytes: 64 * MiB }).close();
    client = LocalSanClient.open(temp.dir);
    await client.createVolumeGroup("vg");
    await client.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 4 * MiB });
    await client.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: 2 * MiB, sectorSize: 4096 });
    await client.write("vg/a", 0, Buffer.alloc(4096, 0xaa));
    await client.createSnapshot({ volumeGroup: "vg", name: "snap", sourceVolumeId: "vg/a" });
  });

  afterEach(async () => {
    await client.close();
    temp.cleanup();
  });

  it("gives a PSK identity exactly its volume: listed, opened read-write, with its key", async () => {
    const exports = new SanExports({ san: client.san, attachments: client.attachments, allowPlainUnix: true });
    const credential = await client.attach("vg/a", "node-1");
    const peer: NbdPeer = { pskIdentity: credential.pskIdentity, transport: "tcp" };
    expect(exports.pskKey(credential.pskIdentity)?.toString("hex")).toBe(credential.pskKey);
    expect(exports.list(peer)).toEqual([{ name: "vg/a", description: "volume" }]);

    const backend = exports.open("vg/a", peer);
    expect(backend.readOnly).toBe(false);
    expect(backend.sizeBytes).toBe(4 * MiB);
    const data = Buffer.alloc(4096);
    await backend.pread(0, data);
    expect(data.equals(Buffer.alloc(4096, 0xaa))).toBe(true);
    backend.close?.();

    for (const other of ["vg/b", "vg/snap", "vg/missing"]) expect(errnoOf(() => exports.open(other, peer))).toBe("EPERM");
  });

  it("forgets a detached identity at once: no key, nothing listed, nothing opened", async () => {
    const exports = new SanExports({ san: client.san, attachments: client.attachments });
    const credential = await client.attach("vg/b", "node-2");
    const peer: NbdPeer = { pskIdentity: credential.pskIdentity, transport: "unix" };
    expect(exports.list(peer)).toHaveLength(1);
    await client.detach("vg/b", "node-2");
    expect(exports.pskKey(credential.pskIdentity)).toBeNull();
    expect(exports.list(peer)).toEqual([]);
    expect(errnoOf(() => exports.open("vg/b", peer))).toBe("EPERM");
    expect(exports.pskKey("esan-made-up-0000000000000000")).toBeNull();
  });

  it("shows plain unix peers every volume and snapshot when allowed, snapshots read-only", () => {
    const exports = new SanExports({ san: client.san, attachments: client.attachments, allowPlainUnix: true });
    expect(exports.list(plainUnix)).toEqual([
      { name: "vg/a", description: "volume" },
      { name: "vg/b", description: "volume" },
      { name: "vg/snap", description: "snapshot (read-only)" },
    ]);
    const snapshot = exports.open("vg/snap", plainUnix);
    expect(snapshot.readOnly).toBe(true);
    snapshot.close?.();
    expect(exports.open("vg/b", plainUnix).minimumBlockSize).toBe(4096);
    expect(errnoOf(() => exports.open("vg/missing", plainUnix))).toBe("ENOENT");
  });

  it("gives plain peers nothing when plain unix is off, and plain TCP peers nothing ever", () => {
    const closed = new SanExports({ san: client.san, attachments: client.attachments });
    expect(closed.list(plainUnix)).toEqual([]);
    expect(errnoOf(() => closed.open("vg/a", plainUnix))).toBe("EPERM");
    const open = new SanExports({ san: client.san, attachments: client.attachments, allowPlainUnix: true });
    expect(open.list(plainTcp)).toEqual([]);
    expect(errnoOf(() => open.open("vg/a", plainTcp))).toBe("EPERM");
  });
});
