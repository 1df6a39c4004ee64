// What an opened backend is offered as: its validated block sizes, the terms the core enforces, and the flag word.
import type { NbdBackend } from "./backend.ts";
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from "./constants.ts";
import type { ExportTerms } from "./request-checks.ts";

/** Negotiated before the export was chosen. */
export interface Negotiated {
  structuredReplies: boolean;
  /** base:allocation was selected for this very export name. */
  baseAllocation: boolean;
}

const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** Throws when a backend's sizes break the spec's block size rules: that is a bug in the backend, not the client. */
export function validateBackend(backend: NbdBackend): void {
  const { sizeBytes, minimumBlockSize: min, preferredBlockSize: preferred, maximumBlockSize: max } = backend;
  const problems: string[] = [];
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) problems.push(`size ${sizeBytes} is not a byte count`);
  if (!isPowerOfTwo(min) || min > 65536) problems.push(`minimum block size ${min} is not a power of two up to 65536`);
  if (!isPowerOfTwo(preferred) || preferred < Math.max(min, 512)) problems.push(`preferred block size ${preferred} is invalid`);
  if (!Number.isSafeInteger(max) || max < min || max > 0xffff_ffff || max % min !== 0) {
    problems.push(`maximum block size ${max} is not a multiple of the minimum up to 2^32-1`);
  }
  if (problems.length > 0) throw new Error(`The export backend is unusable: ${problems.join("; ")}.`);
}

/**
 * The terms of an export, nbdkit-style: what the backend lacks is either emulated (FUA through flush, zeroes through
 * writes) or not advertised. A read-only export advertises no write commands.
 */
export function exportTerms(backend: NbdBackend, negotiated: Negotiated): ExportTerms {
  const writable = !backend.readOnly;
  const flush = backend.canFlush();
  return {
    sizeBytes: backend.sizeBytes,
    minimumBlockSize: backend.minimumBlockSize,
    maximumBlockSize: backend.maximumBlockSize,
    readOnly: backend.readOnly,
    flush,
    fua: writable && (backend.canFua() || flush),
    trim: writable && backend.canTrim(),
    writeZeroes: writable,
    // Advertised whenever WRITE_ZEROES is; a backend without fast zeroing answers FAST_ZERO requests with ENOTSUP.
    fastZero: writable,
    df: negotiated.structuredReplies,
    blockStatus: negotiated.structuredReplies && negotiated.baseAllocation,
  };
}

/** The 16-bit transmission flags for INFO_EXPORT and the EXPORT_NAME reply. */
export function transmissionFlags(terms: ExportTerms, backend: NbdBackend): number {
  let flags = NBD_FLAG_HAS_FLAGS;
  if (terms.readOnly) flags |= NBD_FLAG_READ_ONLY;
  if (terms.flush) flags |= NBD_FLAG_SEND_FLUSH;
  if (terms.fua) flags |= NBD_FLAG_SEND_FUA;
  if (terms.trim) flags |= NBD_FLAG_SEND_TRIM;
  if (terms.writeZeroes) flags |= NBD_FLAG_SEND_WRITE_ZEROES;
  if (terms.fastZero) flags |= NBD_FLAG_SEND_FAST_ZERO;
  if (terms.df) flags |= NBD_FLAG_SEND_DF;
  if (backend.canMultiConn()) flags |= NBD_FLAG_CAN_MULTI_CONN;
  return flags;
}
