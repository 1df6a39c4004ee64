// The SAN API's one mapping between esan errors and gRPC status: the esan code travels in a trailer, the sentence as the
// status message, so GrpcSanClient rebuilds the very EsanError the engine threw and generic gRPC clients see fitting codes.
import { Metadata, status, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import {
  AlreadyExistsError,
  BusyError,
  CapacityExceededError,
  CorruptError,
  DataDirInUseError,
  EsanError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  ReadOnlyError,
  SnapshotCountExceededError,
  SnapshotOperationRateExceededError,
  StoreUnavailableError,
  type EsanErrorCode,
} from "../storage/errors.ts";
import { SanApiError } from "./errors.ts";

/** Trailer carrying the stable esan error code. */
export const ERROR_CODE_KEY = "esan-error-code";
/** Trailer carrying the limit of SnapshotCountExceeded and SnapshotOperationRateExceeded. */
export const ERROR_LIMIT_KEY = "esan-error-limit";
/** Trailer carrying when the next snapshot slot opens, for SnapshotOperationRateExceeded. */
export const ERROR_RETRY_AFTER_KEY = "esan-error-retry-after-ms";
/** Trailer carrying the owning pid of DataDirInUse. */
export const ERROR_PID_KEY = "esan-error-pid";

/** gRPC status code for each esan code (ARCHITECTURE.md's table; Corrupt is DATA_LOSS, never INTERNAL). */
const GRPC_CODES: Record<EsanErrorCode, status> = {
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

/** The gRPC status code an esan error code maps to. */
export function grpcCodeFor(code: EsanErrorCode): status {
  return GRPC_CODES[code];
}

/** What the server sends for an error; `known` is false for a bug, whose detail must go to the log only. */
export interface MappedStatus extends StatusObject {
  known: boolean;
}

/**
 * Turns anything a handler threw into a status. EsanErrors and SanApiErrors keep their sentence; anything else
 * becomes INTERNAL with a generic sentence naming `requestId`, so no stack trace or internal detail reaches a client.
 */
export function toStatus(err: unknown, requestId: string): MappedStatus {
  const metadata = new Metadata();
  if (err instanceof EsanError) {
    metadata.set(ERROR_CODE_KEY, err.code);
    if (err instanceof SnapshotCountExceededError || err instanceof SnapshotOperationRateExceededError) {
      metadata.set(ERROR_LIMIT_KEY, String(err.limit));
    }
    if (err instanceof SnapshotOperationRateExceededError) metadata.set(ERROR_RETRY_AFTER_KEY, String(err.retryAfterMs));
    if (err instanceof DataDirInUseError) metadata.set(ERROR_PID_KEY, String(err.pid));
    return { code: grpcCodeFor(err.code), details: err.message, metadata, known: true };
  }
  if (err instanceof SanApiError && err.code === "Unauthenticated") {
    return { code: status.UNAUTHENTICATED, details: err.message, metadata, known: true };
  }
  return {
    code: status.INTERNAL,
    details: `The SAN service failed unexpectedly while handling request ${requestId}; its log has the details.`,
    metadata,
    known: false,
  };
}

/** Builds the EsanError subclass named by `code`, or null for a code this build does not know. */
function esanError(code: string, message: string, trailers: Metadata): EsanError | null {
  const number = (key: string) => Number(trailers.get(key)[0] ?? Number.NaN);
  switch (code as EsanErrorCode) {
    case "InvalidArgument":
      return new InvalidArgumentError(message);
    case "NotFound":
      return new NotFoundError(message);
    case "AlreadyExists":
      return new AlreadyExistsError(message);
    case "FailedPrecondition":
      return new FailedPreconditionError(message);
    case "OutOfRange":
      return new OutOfRangeError(message);
    case "ReadOnly":
      return new ReadOnlyError(message);
    case "CapacityExceeded":
      return new CapacityExceededError(message);
    case "SnapshotCountExceeded":
      return new SnapshotCountExceededError(message, number(ERROR_LIMIT_KEY));
    case "SnapshotOperationRateExceeded":
      return new SnapshotOperationRateExceededError(message, number(ERROR_LIMIT_KEY), number(ERROR_RETRY_AFTER_KEY));
    case "Busy":
      return new BusyError(message);
    case "DataDirInUse":
      return new DataDirInUseError(message, number(ERROR_PID_KEY));
    case "Corrupt":
      return new CorruptError(message);
    case "StoreUnavailable":
      return new StoreUnavailableError(message);
    default:
      return null;
  }
}

/**
 * Turns a failed call's status back into the error the server's engine threw, so callers cannot tell a remote SAN
 * from a local one. Failures with no esan code are SanApiErrors: unreachable (`address` names where we looked),
 * unauthenticated, or internal.
 */
export function fromStatus(err: ServiceError, address: string): Error {
  const code = err.metadata?.get(ERROR_CODE_KEY)[0];
  if (typeof code === "string") {
    const rebuilt = esanError(code, err.details, err.metadata);
    if (rebuilt) return rebuilt;
  }
  switch (err.code) {
    case status.UNAUTHENTICATED:
      return new SanApiError("Unauthenticated", err.details, { cause: err });
    case status.UNAVAILABLE:
      return new SanApiError(
        "Unavailable",
        `Cannot reach the SAN API at ${address}: ${err.details.replace(/\.$/, "")}. Check that 'esan san serve' is running there.`,
        { cause: err },
      );
    default:
      return new SanApiError("Internal", err.details || `The SAN API call failed with gRPC status ${err.code}.`, { cause: err });
  }
}
