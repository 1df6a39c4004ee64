// The CSI driver's structured log (pino, JSON lines on stderr). Handlers log only redacted messages (redact.ts); the
// pino paths below are a second line of defence against a secret passed by mistake.
import pino, { type DestinationStream, type Logger } from "pino";
import { PUBLISH_CONTEXT_KEYS } from "./publish-context.ts";

/** Paths pino blanks wherever they appear. */
export const CSI_REDACTED_PATHS = [
  "secrets",
  "*.secrets",
  "*.*.secrets",
  "pskKey",
  "*.pskKey",
  `publishContext["${PUBLISH_CONTEXT_KEYS.pskKey}"]`,
  `*.publishContext["${PUBLISH_CONTEXT_KEYS.pskKey}"]`,
  `*.*.publishContext["${PUBLISH_CONTEXT_KEYS.pskKey}"]`,
];

/** Options of createCsiLogger. */
export interface CsiLoggerOptions {
  /** pino level: fatal, error, warn, info (default), debug, trace or silent. */
  level?: string;
  /** Where lines go (default: stderr, written synchronously so nothing is lost at exit). */
  destination?: DestinationStream;
}

/** A pino logger for `esan csi`. */
export function createCsiLogger(options: CsiLoggerOptions = {}): Logger {
  return pino(
    { level: options.level ?? "info", base: { service: "esan-csi" }, redact: { paths: CSI_REDACTED_PATHS, censor: "[redacted]" } },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
