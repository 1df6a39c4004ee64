// What the NBD protocol core serves: exports behind a small callback interface, in the shape of nbdkit's plugins.

/** One extent of BLOCK_STATUS base:allocation. */
export interface NbdExtent {
  offset: number;
  length: number;
  /** NBD_STATE_HOLE: no storage is allocated here. */
  hole: boolean;
  /** NBD_STATE_ZERO: the range reads as zeroes. */
  zero: boolean;
}

/** Per-request flags the core passes through after checking them against the backend's capabilities. */
export interface NbdWriteFlags {
  fua: boolean;
}

export interface NbdZeroFlags extends NbdWriteFlags {
  /** NBD_CMD_FLAG_NO_HOLE: keep the range allocated. */
  noHole: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than zero slowly. */
  fastZero: boolean;
}

/**
 * One opened export. The core has already checked bounds, alignment, flags and read-only-ness before it calls
 * any method, so a backend only does the I/O. Methods may return values or promises. A backend throws an error
 * with an `nbdErrno` property ("EIO", "ENOSPC", "EPERM", "EINVAL", "ENOTSUP") to choose the reply's error.
 */
export interface NbdBackend {
  readonly sizeBytes: number;
  /** Logical block size the client must align to (512 or 4096). */
  readonly minimumBlockSize: number;
  /** Preferred I/O size (the chunk size, for example). */
  readonly preferredBlockSize: number;
  /** Largest single request; the core refuses bigger ones with EINVAL (or EOVERFLOW for reads). */
  readonly maximumBlockSize: number;
  readonly readOnly: boolean;
  /** Capability queries; the core emulates or refuses what a backend lacks. */
  canTrim(): boolean;
  canZero(): boolean;
  canFastZero(): boolean;
  canFua(): boolean;
  canFlush(): boolean;
  canExtents(): boolean;
  /** A flush on one connection covers writes acknowledged on every connection of this export. */
  canMultiConn(): boolean;
  /** Fills all of `target` with the bytes at `offset`. `target` is lent: the core sends it once the call returns (or its promise settles). */
  pread(offset: number, target: Buffer): void | Promise<void>;
  /** `data` is lent: the core reuses its memory once the call returns (or its promise settles), so copy to keep it. */
  pwrite(offset: number, data: Buffer, flags: NbdWriteFlags): void | Promise<void>;
  zero(offset: number, length: number, flags: NbdZeroFlags): void | Promise<void>;
  trim(offset: number, length: number, flags: NbdWriteFlags): void | Promise<void>;
  flush(): void | Promise<void>;
  /** Allocation of [offset, offset+length), covering at least its start; the core clips and honours REQ_ONE. */
  extents(offset: number, length: number): NbdExtent[] | Promise<NbdExtent[]>;
  /** Called when the connection that opened it goes away. */
  close?(): void;
}

/** Who is on the other end of a connection, as far as the server knows. */
export interface NbdPeer {
  /** TLS-PSK identity, or null on a plain (unix socket) connection. */
  pskIdentity: string | null;
  /** "unix" or "tcp". */
  transport: "unix" | "tcp";
}

/** A description of an export for OPT_LIST and OPT_INFO. */
export interface NbdExportInfo {
  name: string;
  description?: string;
}

/**
 * The set of exports a server offers, with authorization. `list` returns only what `peer` may see;
 * `open` throws an error with `nbdErrno` "EPERM" (or "ENOENT" for an unknown name) when `peer` may not open it.
 */
export interface NbdExportProvider {
  list(peer: NbdPeer): NbdExportInfo[] | Promise<NbdExportInfo[]>;
  open(name: string, peer: NbdPeer): NbdBackend | Promise<NbdBackend>;
  /** The PSK key bytes for an identity, or null when it is unknown or revoked. Used during the TLS handshake. */
  pskKey(identity: string): Buffer | null;
}

/** An error a backend or provider throws to pick the NBD error code of the reply. */
export class NbdError extends Error {
  readonly nbdErrno: "EPERM" | "EIO" | "ENOMEM" | "EINVAL" | "ENOSPC" | "EOVERFLOW" | "ENOTSUP" | "ESHUTDOWN" | "ENOENT";

  constructor(nbdErrno: NbdError["nbdErrno"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.nbdErrno = nbdErrno;
    this.name = "NbdError";
  }
}
