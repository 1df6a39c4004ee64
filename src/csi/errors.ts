// The one error type CSI handlers throw (a gRPC status code and a sentence), and the one table that maps engine and
// SAN API errors to CSI's gRPC codes. Nothing else in src/csi picks a status code for an error it did not make.
import { status } from "@grpc/grpc-js";
import { SanApiError, type SanApiErrorCode } from "../san/errors.ts";
import { EsanError, type EsanErrorCode } from "../storage/errors.ts";

/** A CSI call refused or failed with a spec-defined gRPC code; `message` says what, why, and what to do. */
export class CsiError extends Error {
  readonly code: status;

  constructor(code: status, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "CsiError";
  }
}

/** Shorthand for the most common refusal: a request field is missing or malformed. */
export function invalidArgument(message: string): CsiError {
  return new CsiError(status.INVALID_ARGUMENT, message);
}

/**
 * gRPC code of each engine error (ARCHITECTURE.md, "CSI mapping"). Limits are RESOURCE_EXHAUSTED, which the
 * snapshot sidecar retries with backoff; Busy is ABORTED, which every sidecar retries.
 */
const ENGINE_CODES: Record<EsanErrorCode, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  FailedPrecondition: status.FAILED_PRECONDITION,
  OutOfRange: status.OUT_OF_RANGE,
  ReadOnly: status.FAILED_PRECONDITION,
  CapacityExceeded: status.RESOURCE_EXHAUSTED,
  SnapshotCountExceeded: status.RESOURCE_EXHAUSTED,
  SnapshotOperationRateExceeded: status.RESOURCE_EXHAUSTED,
  Busy: status.ABORTED,
  DataDirInUse: status.FAILED_PRECONDITION,
  Corrupt: status.DATA_LOSS,
  StoreUnavailable: status.UNAVAILABLE,
};

/**
 * gRPC code of each SAN API transport failure. An unreachable or refusing SAN is UNAVAILABLE (the CO retries, and
 * Probe reports it); the SAN's own unexpected failure stays INTERNAL and keeps the SAN's generic sentence.
 */
const SAN_API_CODES: Record<SanApiErrorCode, status> = {
  Unavailable: status.UNAVAILABLE,
  Unauthenticated: status.UNAVAILABLE,
  Internal: status.INTERNAL,
};

/** What a CSI call answers with for an error; `known` is false for a bug, whose detail goes to the log only. */
export interface CsiStatus {
  code: status;
  details: string;
  known: boolean;
}

/**
 * Maps anything a handler threw to the status the client sees. CsiErrors, engine errors and SAN API errors keep their
 * sentence; anything else becomes INTERNAL with a generic sentence naming `requestId`, so no stack trace or internal
 * detail reaches a client.
 */
export function toCsiStatus(err: unknown, requestId: string): CsiStatus {
  if (err instanceof CsiError) return { code: err.code, details: err.message, known: true };
  if (err instanceof EsanError) return { code: ENGINE_CODES[err.code] ?? status.INTERNAL, details: err.message, known: err.code in ENGINE_CODES };
  if (err instanceof SanApiError) {
    if (err.code === "Unauthenticated") {
      return { code: status.UNAVAILABLE, details: `The SAN API refused this driver's credentials: ${err.message}`, known: true };
    }
    return { code: SAN_API_CODES[err.code], details: err.message, known: true };
  }
  return {
    code: status.INTERNAL,
    details: `The esan CSI driver failed unexpectedly while handling request ${requestId}; its log has the details.`,
    known: false,
  };
}

/** The stable name of a gRPC status code, as metrics label it (`OK`, `NOT_FOUND`, …). */
export function grpcCodeName(code: status): string {
  return status[code] ?? String(code);
}
