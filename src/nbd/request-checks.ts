// The one place a transmission request is judged: command, flags, read-only-ness, bounds, alignment and size.
import {
  COMMAND_NAMES,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  type NbdWireErrno,
} from "./constants.ts";

/** What was negotiated for the export in use: fixed for the life of the connection. */
export interface ExportTerms {
  sizeBytes: number;
  minimumBlockSize: number;
  maximumBlockSize: number;
  readOnly: boolean;
  /** Flags advertised to the client (SEND_FLUSH and friends), as booleans. */
  flush: boolean;
  fua: boolean;
  trim: boolean;
  writeZeroes: boolean;
  fastZero: boolean;
  /** NBD_CMD_FLAG_DF is accepted (structured replies were negotiated). */
  df: boolean;
  /** base:allocation was selected for this export, so BLOCK_STATUS may be used. */
  blockStatus: boolean;
}

/** The fields of a request header the checks need. */
export interface RequestFields {
  type: number;
  flags: number;
  offset: number;
  length: number;
}

/** Why a request is refused. */
export interface Refusal {
  errno: NbdWireErrno;
  message: string;
}

function refuse(errno: NbdWireErrno, message: string): Refusal {
  return { errno, message };
}

/** Flags a command may carry beyond FUA, given what was advertised. */
function commandFlags(type: number, terms: ExportTerms): number {
  switch (type) {
    case NBD_CMD_READ:
      return terms.df ? NBD_CMD_FLAG_DF : 0;
    case NBD_CMD_WRITE_ZEROES:
      return NBD_CMD_FLAG_NO_HOLE | (terms.fastZero ? NBD_CMD_FLAG_FAST_ZERO : 0);
    case NBD_CMD_BLOCK_STATUS:
      return NBD_CMD_FLAG_REQ_ONE;
    default:
      return 0;
  }
}

/**
 * Returns null when the request may go to the backend, or the error to answer with. Following the spec and nbdkit:
 * unknown commands and flags, bad alignment, out-of-range and oversized requests get EINVAL; writes to a read-only
 * export get EPERM. (The spec suggests ENOSPC for writes past the end; esan answers EINVAL, so "the SAN is full"
 * stays distinguishable from "the request was wrong".)
 */
export function checkRequest(request: RequestFields, terms: ExportTerms): Refusal | null {
  const { type, flags, offset, length } = request;
  // CACHE is never advertised, so it counts as unknown like any other number.
  const name = type === NBD_CMD_CACHE ? undefined : COMMAND_NAMES[type];
  if (name === undefined) return refuse("EINVAL", `Unknown command ${type}.`);
  const allowed = commandFlags(type, terms) | (terms.fua ? NBD_CMD_FLAG_FUA : 0);
  if ((flags & ~allowed) !== 0) return refuse("EINVAL", `${name} does not accept flags 0x${(flags & ~allowed).toString(16)}.`);

  const writes = type === NBD_CMD_WRITE || type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES;
  if (writes && terms.readOnly) return refuse("EPERM", `${name} refused: the export is read-only.`);

  if (type === NBD_CMD_FLUSH || type === NBD_CMD_DISC) {
    if (type === NBD_CMD_FLUSH && !terms.flush) return refuse("EINVAL", "FLUSH was not advertised.");
    if (offset !== 0 || length !== 0) return refuse("EINVAL", `${name} must have offset and length 0.`);
    return null;
  }
  if (type === NBD_CMD_TRIM && !terms.trim) return refuse("EINVAL", "TRIM was not advertised.");
  if (type === NBD_CMD_WRITE_ZEROES && !terms.writeZeroes) return refuse("EINVAL", "WRITE_ZEROES was not advertised.");
  if (type === NBD_CMD_BLOCK_STATUS && !terms.blockStatus) {
    return refuse("EINVAL", "BLOCK_STATUS needs the base:allocation context selected for this export.");
  }

  if (length === 0) return refuse("EINVAL", `${name} with length 0.`);
  if (offset > terms.sizeBytes || length > terms.sizeBytes - offset) {
    return refuse("EINVAL", `${name} of ${length} bytes at offset ${offset} is beyond the export size ${terms.sizeBytes}.`);
  }
  const align = terms.minimumBlockSize;
  if (offset % align !== 0 || length % align !== 0) {
    return refuse("EINVAL", `${name} at offset ${offset} length ${length} is not aligned to the ${align}-byte block size.`);
  }
  const bounded =
    type === NBD_CMD_READ || type === NBD_CMD_WRITE || (type === NBD_CMD_WRITE_ZEROES && (flags & NBD_CMD_FLAG_FAST_ZERO) === 0);
  if (bounded && length > terms.maximumBlockSize) {
    return refuse("EINVAL", `${name} of ${length} bytes exceeds the maximum block size ${terms.maximumBlockSize}.`);
  }
  return null;
}
