// Errors of the protocol core: violations that end a connection, and the mapping of backend errors to wire errors.
import type { NbdError } from "./backend.ts";
import { NBD_ERRNO, type NbdWireErrno } from "./constants.ts";

/** The peer broke a rule we cannot answer with an error reply (bad magic, oversized option): hang up on it. */
export class NbdProtocolError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NbdProtocolError";
  }
}

/** True for an error that carries an `nbdErrno` (an NbdError, or any error a backend shaped that way). */
export function hasNbdErrno(err: unknown): err is Pick<NbdError, "nbdErrno" | "message"> {
  return err instanceof Error && typeof (err as { nbdErrno?: unknown }).nbdErrno === "string";
}

/**
 * The wire error for what a backend threw, and whether it was expected. `ENOENT` (an image that went away
 * mid-connection) goes out as EIO, since the wire has no ENOENT; errors without `nbdErrno` are bugs: EIO, unexpected.
 */
export function wireErrno(err: unknown): { errno: NbdWireErrno; expected: boolean } {
  if (!hasNbdErrno(err)) return { errno: "EIO", expected: false };
  const name = err.nbdErrno;
  if (name === "ENOENT") return { errno: "EIO", expected: true };
  if (Object.hasOwn(NBD_ERRNO, name)) return { errno: name, expected: true };
  return { errno: "EIO", expected: false };
}
