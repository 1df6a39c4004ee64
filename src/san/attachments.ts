// Attachments: which node may open which volume on the NBD endpoint, each with its own TLS-PSK identity and key,
// persisted in DATA_DIR/attachments.sqlite (mode 0600) so a restarted service keeps honouring them.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { InvalidArgumentError } from "../storage/errors.ts";

/** File name of the attachment database inside a data directory. */
export const ATTACHMENTS_FILE = "attachments.sqlite";
/** Bytes of every PSK key. */
export const PSK_KEY_BYTES = 32;

/** One node's authorization for one volume. `pskKey` is secret. */
export interface AttachmentRecord {
  volumeId: string;
  /** The volume's uniqueId when attached: a re-created volume of the same name is not covered. */
  volumeUniqueId: string;
  nodeId: string;
  pskIdentity: string;
  pskKey: Buffer;
  createdAtMs: number;
}

/** Time and randomness, injected so tests can pin identities and keys. */
export interface AttachmentEnvironment {
  now: () => number;
  randomBytes: (size: number) => Buffer;
}

const NODE_ID_PATTERN = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/;
const MAX_NODE_ID_LENGTH = 253;
/** How much of the node id goes into the identity, which stays well under the 128 bytes TLS stacks accept. */
const IDENTITY_NODE_CHARS = 48;

/** Throws InvalidArgument unless `nodeId` is a Kubernetes node name: 1-253 of a-z, 0-9, '-' and '.'. */
export function validateNodeId(nodeId: string): void {
  if (typeof nodeId !== "string" || nodeId.length === 0 || nodeId.length > MAX_NODE_ID_LENGTH || !NODE_ID_PATTERN.test(nodeId)) {
    throw new InvalidArgumentError(
      `The node id '${String(nodeId).slice(0, 80)}' is not allowed: use a Kubernetes node name, 1 to ${MAX_NODE_ID_LENGTH} characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit.`,
    );
  }
}

interface Row {
  volume_id: string;
  volume_unique_id: string;
  node_id: string;
  psk_identity: string;
  psk_key: Uint8Array;
  created_at: number;
}

/**
 * The attachment table and an in-memory index by identity (the NBD server asks for keys synchronously during TLS
 * handshakes). Only the process that owns the data directory opens it, so the index never goes stale.
 */
export class AttachmentStore {
  readonly #db: DatabaseSync;
  readonly #env: AttachmentEnvironment;
  readonly #byIdentity = new Map<string, AttachmentRecord>();

  private constructor(db: DatabaseSync, env: AttachmentEnvironment) {
    this.#db = db;
    this.#env = env;
    for (const row of db.prepare("SELECT * FROM attachments").all() as unknown as Row[]) {
      const record = fromRow(row);
      this.#byIdentity.set(record.pskIdentity, record);
    }
  }

  /** Opens (creating if missing) the attachment database of a data directory the caller already owns. */
  static open(dataDir: string, env: Partial<AttachmentEnvironment> = {}): AttachmentStore {
    const file = path.join(dataDir, ATTACHMENTS_FILE);
    // Create the file with mode 0600 before SQLite does; SQLite gives its journal the same mode.
    fs.closeSync(fs.openSync(file, "a", 0o600));
    fs.chmodSync(file, 0o600);
    const db = new DatabaseSync(file);
    try {
      db.exec(`PRAGMA synchronous = FULL;
        CREATE TABLE IF NOT EXISTS attachments (
          volume_id TEXT NOT NULL, volume_unique_id TEXT NOT NULL, node_id TEXT NOT NULL,
          psk_identity TEXT NOT NULL UNIQUE, psk_key BLOB NOT NULL, created_at INTEGER NOT NULL,
          PRIMARY KEY (volume_id, node_id))`);
      return new AttachmentStore(db, { now: env.now ?? Date.now, randomBytes: env.randomBytes ?? crypto.randomBytes });
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The record for an identity, or null when it is unknown or revoked. */
  byIdentity(identity: string): AttachmentRecord | null {
    return this.#byIdentity.get(identity) ?? null;
  }

  /** Attachments matching the filter, sorted by volume, then node. */
  list(filter: { volumeId?: string | undefined; nodeId?: string | undefined } = {}): AttachmentRecord[] {
    return [...this.#byIdentity.values()]
      .filter((r) => (filter.volumeId === undefined || r.volumeId === filter.volumeId) && (filter.nodeId === undefined || r.nodeId === filter.nodeId))
      .sort((a, b) => (a.volumeId === b.volumeId ? compare(a.nodeId, b.nodeId) : compare(a.volumeId, b.volumeId)));
  }

  /**
   * Returns the node's credential for the volume, issuing one if it has none. Idempotent: asking again returns the
   * same identity and key. A record left from an earlier volume of the same name is replaced.
   */
  issue(volumeId: string, volumeUniqueId: string, nodeId: string): AttachmentRecord {
    validateNodeId(nodeId);
    const existing = this.#find(volumeId, nodeId);
    if (existing && existing.volumeUniqueId === volumeUniqueId) return existing;
    const record: AttachmentRecord = {
      volumeId,
      volumeUniqueId,
      nodeId,
      pskIdentity: `esan-${nodeId.slice(0, IDENTITY_NODE_CHARS).replace(/[.-]+$/, "")}-${this.#env.randomBytes(8).toString("hex")}`,
      pskKey: this.#env.randomBytes(PSK_KEY_BYTES),
      createdAtMs: this.#env.now(),
    };
    this.#db
      .prepare("INSERT OR REPLACE INTO attachments VALUES (?, ?, ?, ?, ?, ?)")
      .run(volumeId, volumeUniqueId, nodeId, record.pskIdentity, record.pskKey, record.createdAtMs);
    if (existing) this.#byIdentity.delete(existing.pskIdentity);
    this.#byIdentity.set(record.pskIdentity, record);
    return record;
  }

  /** Removes the node's attachment to the volume and returns it, or null when there was none. */
  revoke(volumeId: string, nodeId: string): AttachmentRecord | null {
    const existing = this.#find(volumeId, nodeId);
    if (!existing) return null;
    this.#db.prepare("DELETE FROM attachments WHERE volume_id = ? AND node_id = ?").run(volumeId, nodeId);
    this.#byIdentity.delete(existing.pskIdentity);
    return existing;
  }

  /** Closes the database; safe to call twice. */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #find(volumeId: string, nodeId: string): AttachmentRecord | undefined {
    for (const record of this.#byIdentity.values()) {
      if (record.volumeId === volumeId && record.nodeId === nodeId) return record;
    }
    return undefined;
  }
}

function fromRow(row: Row): AttachmentRecord {
  return {
    volumeId: row.volume_id,
    volumeUniqueId: row.volume_unique_id,
    nodeId: row.node_id,
    pskIdentity: row.psk_identity,
    pskKey: Buffer.from(row.psk_key),
    createdAtMs: row.created_at,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
