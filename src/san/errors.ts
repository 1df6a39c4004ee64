// Errors of the SAN API transport itself (no engine behind them): unreachable service, refused credentials, a broken server.
/** Codes of failures that happen around the engine rather than in it. */
export type SanApiErrorCode = "Unauthenticated" | "Unavailable" | "Internal";

/** A SAN API call failed before or after the engine: the service is unreachable, refused the credentials, or broke. */
export class SanApiError extends Error {
  readonly code: SanApiErrorCode;

  constructor(code: SanApiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}
