// The one error type CSI handlers throw: a gRPC status code and a sentence for the caller (never a stack trace).
import { status } from "@grpc/grpc-js";

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
