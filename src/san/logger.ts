// The SAN service's structured log (pino, JSON lines on stderr), with secrets redacted as a second line of defence.
import pino, { type DestinationStream, type Logger } from "pino";

/** Paths pino blanks wherever they appear: PSK keys, bearer tokens, authorization headers. */
export const REDACTED_PATHS = ["pskKey", "*.pskKey", "token", "*.token", "authorization", "*.authorization", "*.*.authorization"];

/** Options of createLogger. */
export interface LoggerOptions {
  /** pino level: fatal, error, warn, info (default), debug, trace or silent. */
  level?: string;
  /** Where lines go (default: stderr, written synchronously so nothing is lost at exit). */
  destination?: DestinationStream;
}

/** A pino logger for the service. Callers still never pass secrets; redaction only catches mistakes. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    { level: options.level ?? "info", base: { service: "esan-san" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
