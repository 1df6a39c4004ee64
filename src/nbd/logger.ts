// The logging surface of the NBD server: the subset of pino's API it calls, and a silent default.

/** A log method in pino's shape: structured fields first, then the sentence. */
export type NbdLogMethod = (fields: Record<string, unknown>, message: string) => void;

/** What the server logs through; a pino logger fits as it is. Key material is never passed to it. */
export interface NbdLogger {
  debug: NbdLogMethod;
  info: NbdLogMethod;
  warn: NbdLogMethod;
  error: NbdLogMethod;
}

const ignore: NbdLogMethod = () => {};

/** The default logger: says nothing. */
export const silentLogger: NbdLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/** The message of an error, for logs: never its stack, never secrets. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
