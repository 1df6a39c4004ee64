// How CSI names and ids map to esan's: a CSI name becomes a valid engine name (deterministically, so retries find the
// same object), a volume id is the engine's `VG/NAME`, and a durable snapshot id is `disk-snapshot:NAME`.
import crypto from "node:crypto";
import { MAX_NAME_LENGTH, parseId, type ParsedId } from "../storage/names.ts";
import { invalidArgument } from "./errors.ts";

/** Longest string field CSI allows (spec "Size Limits": 128 bytes). */
export const MAX_CSI_STRING_BYTES = 128;

/** Prefix of the ids of durable-tier (disk) snapshots; `:` never occurs in an engine id, so the two cannot collide. */
export const DISK_SNAPSHOT_ID_PREFIX = "disk-snapshot:";

/** Hex digits of the name hash appended when a CSI name has to be shortened or cleaned. */
const HASH_DIGITS = 10;

/** Control characters the spec bans in names (all but the common whitespace). */
// eslint-disable-next-line no-control-regex
const BANNED_CHARACTERS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/;

/**
 * Throws INVALID_ARGUMENT unless `value` is a usable CSI string field: present, at most 128 bytes, without the control
 * characters the spec bans. `field` is the proto field name the sentence names.
 */
export function checkCsiString(field: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw invalidArgument(`The request field ${field} is required.`);
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_CSI_STRING_BYTES) {
    throw invalidArgument(`The request field ${field} is ${bytes} bytes long; CSI allows at most ${MAX_CSI_STRING_BYTES}.`);
  }
  if (BANNED_CHARACTERS.test(value)) {
    throw invalidArgument(`The request field ${field} contains a control character, which CSI does not allow in names and ids.`);
  }
  return value;
}

/**
 * The engine name for a CSI name. A name that already is a valid engine name (1–63 of a-z, 0-9, '-', such as
 * Kubernetes' `pvc-<uid>`) is used as is. Any other is lower-cased, its other characters become '-', it is cut to fit,
 * and a hash of the original is appended, so two different CSI names never share an engine name in practice and the
 * same CSI name always maps to the same one.
 */
export function engineName(csiName: string): string {
  if (csiName.length <= MAX_NAME_LENGTH && /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(csiName)) return csiName;
  const hash = crypto.createHash("sha256").update(csiName).digest("hex").slice(0, HASH_DIGITS);
  const cleaned = csiName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .slice(0, MAX_NAME_LENGTH - HASH_DIGITS - 1)
    .replace(/^-+|-+$/g, "");
  return cleaned === "" ? hash : `${cleaned}-${hash}`;
}

/** The engine's `VG/NAME` of a CSI volume, group snapshot or instant snapshot id; null for an id esan never issues. */
export function parseEngineId(id: string): ParsedId | null {
  try {
    return parseId("object", id);
  } catch {
    return null;
  }
}

/** A CSI snapshot id, decoded: an instant snapshot in the SAN, or a disk snapshot in the durable tier. */
export type SnapshotRef = { tier: "instant"; id: string; volumeGroup: string; name: string } | { tier: "durable"; name: string };

/** Decodes a CSI snapshot id; null for an id esan never issues (which therefore names no snapshot). */
export function parseSnapshotId(id: string): SnapshotRef | null {
  if (id.startsWith(DISK_SNAPSHOT_ID_PREFIX)) {
    const name = id.slice(DISK_SNAPSHOT_ID_PREFIX.length);
    return /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(name) && name.length <= MAX_NAME_LENGTH ? { tier: "durable", name } : null;
  }
  const parsed = parseEngineId(id);
  return parsed ? { tier: "instant", id, ...parsed } : null;
}

/** The CSI id of a disk snapshot. */
export function diskSnapshotId(name: string): string {
  return `${DISK_SNAPSHOT_ID_PREFIX}${name}`;
}
