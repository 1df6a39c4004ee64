// The one error type CSI handlers throw (a gRPC status code and a sentence), and the mapping of everything else a
// handler may throw: engine errors through the SAN API's table (src/san/status.ts), SAN API transport failures here.
import { status } from "@grpc/grpc-js";
import { SanApiError, type SanApiErrorCode } from "../san/errors.ts";
import { grpcCodeFor } from "../san/status.ts";
import { EsanError } from "../storage/errors.ts";

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
  // Engine errors map through the SAN API's table (ARCHITECTURE.md, "CSI mapping"): one table for both. Limits are
  // RESOURCE_EXHAUSTED, which the snapshot sidecar retries with backoff; Busy is ABORTED, which every sidecar retries.
  // The details lead with the engine's code, as the CLI prints it (`CODE: sentence`): Kubernetes shows only the
  // details in a VolumeSnapshot's status, and SnapshotCountExceeded names the limit better than RESOURCE_EXHAUSTED.
  if (err instanceof EsanError) return { code: grpcCodeFor(err.code), details: `${err.code}: ${err.message}`, known: true };
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
