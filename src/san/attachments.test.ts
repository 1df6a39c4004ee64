// Tests of the attachment store: idempotent credentials, revocation, persistence across reopen, and file mode 0600.
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../storage/errors.ts";
import { FakeClock } from "../../test/support/temp-dir.ts";
import { ATTACHMENTS_FILE, AttachmentStore, validateNodeId } from "./attachments.ts";

/** Randomness that counts up, so identities and keys are predictable and distinct. */
function countingRandom(): (size: number) => Buffer {
  let next = 0;
  return (size) => Buffer.alloc(size, ++next);
}

describe("AttachmentStore", () => {
  let dir = "";
  const clock = new FakeClock();

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : "/tmp", "esan-attach-"));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("issues an identity and 32-byte key per (volume, node), the same one when asked again", () => {
    const store = AttachmentStore.open(dir, { now: clock.now, randomBytes: countingRandom() });
    const first = store.issue("vg/a", "u1", "node-1.example");
    expect(first.pskIdentity).toBe(`esan-node-1.example-${"01".repeat(8)}`);
    expect(first.pskKey).toEqual(Buffer.alloc(32, 2));
    expect(store.issue("vg/a", "u1", "node-1.example")).toBe(first);
    const other = store.issue("vg/a", "u1", "node-2");
    expect(other.pskIdentity).not.toBe(first.pskIdentity);
    expect(store.byIdentity(first.pskIdentity)).toBe(first);
    expect(store.list({ volumeId: "vg/a" }).map((r) => r.nodeId)).toEqual(["node-1.example", "node-2"]);
    store.close();
  });

  it("replaces a credential left from an earlier volume of the same name", () => {
    const store = AttachmentStore.open(dir, { randomBytes: countingRandom() });
    const old = store.issue("vg/a", "u1", "n1");
    const renewed = store.issue("vg/a", "u2", "n1");
    expect(renewed.pskIdentity).not.toBe(old.pskIdentity);
    expect(store.byIdentity(old.pskIdentity)).toBeNull();
    expect(store.list()).toHaveLength(1);
    store.close();
  });

  it("revokes, and forgets the identity at once", () => {
    const store = AttachmentStore.open(dir);
    const record = store.issue("vg/a", "u1", "n1");
    expect(store.revoke("vg/a", "n1")).toEqual(record);
    expect(store.byIdentity(record.pskIdentity)).toBeNull();
    expect(store.revoke("vg/a", "n1")).toBeNull();
    store.close();
  });

  it("keeps attachments across a reopen, in a file only its owner can read", () => {
    const store = AttachmentStore.open(dir);
    const record = store.issue("vg/a", "u1", "n1");
    store.close();
    expect(fs.statSync(path.join(dir, ATTACHMENTS_FILE)).mode & 0o777).toBe(0o600);
    const reopened = AttachmentStore.open(dir);
    expect(reopened.byIdentity(record.pskIdentity)).toEqual(record);
    reopened.close();
  });

  it.each(["", "Node1", "-n", "n_1", "a".repeat(254)])("refuses the node id %j", (nodeId) => {
    expect(() => validateNodeId(nodeId)).toThrow(InvalidArgumentError);
  });

  it("keeps identities short for a long node name", () => {
    const store = AttachmentStore.open(dir);
    const record = store.issue("vg/a", "u1", `${"n".repeat(47)}.${"m".repeat(200)}`);
    expect(record.pskIdentity.length).toBeLessThanOrEqual(5 + 48 + 1 + 16);
    expect(record.pskIdentity).toMatch(/^esan-n{47}-[0-9a-f]{16}$/);
    store.close();
  });
});
