// Typed engine errors: every refusal the engine makes is one of these, with a stable code and a sentence.

/** The stable error codes. Only src/csi/errors.ts maps them to gRPC codes; the CLI prints them as `CODE: sentence`. */
export type EsanErrorCode =
  | "InvalidArgument"
  | "NotFound"
  | "AlreadyExists"
  | "FailedPrecondition"
  | "OutOfRange"
  | "ReadOnly"
  | "CapacityExceeded"
  | "SnapshotCountExceeded"
  | "SnapshotOperationRateExceeded"
  | "Busy"
  | "DataDirInUse"
  | "Corrupt"
  | "StoreUnavailable";

/** Azure spells the rate error this way in some API versions; callers matching on codes accept both. */
export const SNAPSHOT_RATE_CODE_ALIAS = "SnaphotOperationRateExceeded";

/** True when `code` names the snapshot rate cap, in either Azure spelling. */
export function isSnapshotRateCode(code: string): boolean {
  return code === "SnapshotOperationRateExceeded" || code === SNAPSHOT_RATE_CODE_ALIAS;
}

/** Base of every error esan throws on purpose. `message` is a full sentence: what was refused, why, what to do. */
export class EsanError extends Error {
  readonly code: EsanErrorCode;

  constructor(code: EsanErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}

/** A malformed name, size, offset, option or token. */
export class InvalidArgumentError extends EsanError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("InvalidArgument", message, options);
  }
}

/** The named volume group, volume, snapshot or group snapshot does not exist. */
export class NotFoundError extends EsanError {
  constructor(message: string) {
    super("NotFound", message);
  }
}

/** An object of that name exists with other parameters. */
export class AlreadyExistsError extends EsanError {
  constructor(message: string) {
    super("AlreadyExists", message);
  }
}

/** The request is well formed but the current state forbids it (shrinking, a non-empty group, a smaller clone). */
export class FailedPreconditionError extends EsanError {
  constructor(message: string) {
    super("FailedPrecondition", message);
  }
}

/** I/O outside the image's size. */
export class OutOfRangeError extends EsanError {
  constructor(message: string) {
    super("OutOfRange", message);
  }
}

/** A write to a read-only image (a snapshot). */
export class ReadOnlyError extends EsanError {
  constructor(message: string) {
    super("ReadOnly", message);
  }
}

/** The SAN has no room: provisioned capacity for a new volume, or physical chunks for a write. */
export class CapacityExceededError extends EsanError {
  constructor(message: string) {
    super("CapacityExceeded", message);
  }
}

/** A volume already holds as many snapshots as the SAN allows. */
export class SnapshotCountExceededError extends EsanError {
  readonly limit: number;

  constructor(message: string, limit: number) {
    super("SnapshotCountExceeded", message);
    this.limit = limit;
  }
}

/** A volume used up its snapshot creations for the rolling window; `retryAfterMs` says when the next slot opens. */
export class SnapshotOperationRateExceededError extends EsanError {
  readonly limit: number;
  readonly retryAfterMs: number;

  constructor(message: string, limit: number, retryAfterMs: number) {
    super("SnapshotOperationRateExceeded", message);
    this.limit = limit;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Another operation holds the object's lock; the caller may retry. */
export class BusyError extends EsanError {
  constructor(message: string) {
    super("Busy", message);
  }
}

/** Another live process owns the data directory. */
export class DataDirInUseError extends EsanError {
  readonly pid: number;

  constructor(message: string, pid: number) {
    super("DataDirInUse", message);
    this.pid = pid;
  }
}

/** On-disk state that contradicts the engine's invariants. */
export class CorruptError extends EsanError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Corrupt", message, options);
  }
}

/** The durable store failed under a background job (an outage); the job resumes when retried or reopened. */
export class StoreUnavailableError extends EsanError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("StoreUnavailable", message, options);
  }
}
