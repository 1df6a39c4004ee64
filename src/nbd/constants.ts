// NBD protocol numbers (doc/proto.md of NetworkBlockDevice/nbd): magics, flags, options, commands, replies, errors.

/** "NBDMAGIC": first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": newstyle magic, sent by the server and at the start of every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Magic of every option reply. */
export const NBD_REP_MAGIC = 0x0003e889045565a9n;
/** Magic of a transmission request (compact header). */
export const NBD_REQUEST_MAGIC = 0x25609513;
/** Magic of a simple reply. */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
/** Magic of a structured reply chunk. */
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server → client, 16 bits). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;

/** Client flags (client → server, 32 bits). */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits, in INFO_EXPORT or the EXPORT_NAME reply). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

/** Option types. */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
/** Not supported: answered with NBD_REP_ERR_UNSUP like any unknown option. */
export const NBD_OPT_EXTENDED_HEADERS = 11;

/** Option reply types; errors have bit 31 set. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_ERR_UNSUP = 0x8000_0001;
export const NBD_REP_ERR_POLICY = 0x8000_0002;
export const NBD_REP_ERR_INVALID = 0x8000_0003;
export const NBD_REP_ERR_PLATFORM = 0x8000_0004;
export const NBD_REP_ERR_TLS_REQD = 0x8000_0005;
export const NBD_REP_ERR_UNKNOWN = 0x8000_0006;
export const NBD_REP_ERR_SHUTDOWN = 0x8000_0007;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = 0x8000_0008;
export const NBD_REP_ERR_TOO_BIG = 0x8000_0009;

/** Information types of NBD_REP_INFO. */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** Command types. */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

/** Command flags. */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

/** Structured reply flags and types. */
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = 0x8001;
export const NBD_REPLY_TYPE_ERROR_OFFSET = 0x8002;

/** base:allocation status flags. */
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;

/** The one metadata context this server offers, and the id it gets in SET_META_CONTEXT replies. */
export const BASE_ALLOCATION = "base:allocation";
export const BASE_ALLOCATION_ID = 1;

/** Error values on the wire (not the host's errno numbers). */
export const NBD_ERRNO = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** An error name the wire knows. */
export type NbdWireErrno = keyof typeof NBD_ERRNO;

/** Sizes of fixed protocol messages, in bytes. */
export const OPTION_HEADER_BYTES = 16;
export const REQUEST_HEADER_BYTES = 28;
export const SIMPLE_REPLY_BYTES = 16;
export const STRUCTURED_HEADER_BYTES = 20;

/** Longest string (export name, query, message) the protocol allows. */
export const NBD_MAX_STRING_BYTES = 4096;

/**
 * A write payload at or below this many bytes is never treated as a denial of service, whatever the advertised
 * maximum (the spec's 2^25); above both this and the export's maximum block size the server hangs up.
 */
export const NBD_PAYLOAD_DOS_BYTES = 32 * 1024 * 1024;

/** Names of commands, options and replies for log lines and error messages. */
export const COMMAND_NAMES: Record<number, string> = {
  [NBD_CMD_READ]: "READ",
  [NBD_CMD_WRITE]: "WRITE",
  [NBD_CMD_DISC]: "DISC",
  [NBD_CMD_FLUSH]: "FLUSH",
  [NBD_CMD_TRIM]: "TRIM",
  [NBD_CMD_CACHE]: "CACHE",
  [NBD_CMD_WRITE_ZEROES]: "WRITE_ZEROES",
  [NBD_CMD_BLOCK_STATUS]: "BLOCK_STATUS",
};

export const OPTION_NAMES: Record<number, string> = {
  [NBD_OPT_EXPORT_NAME]: "EXPORT_NAME",
  [NBD_OPT_ABORT]: "ABORT",
  [NBD_OPT_LIST]: "LIST",
  [NBD_OPT_STARTTLS]: "STARTTLS",
  [NBD_OPT_INFO]: "INFO",
  [NBD_OPT_GO]: "GO",
  [NBD_OPT_STRUCTURED_REPLY]: "STRUCTURED_REPLY",
  [NBD_OPT_LIST_META_CONTEXT]: "LIST_META_CONTEXT",
  [NBD_OPT_SET_META_CONTEXT]: "SET_META_CONTEXT",
  [NBD_OPT_EXTENDED_HEADERS]: "EXTENDED_HEADERS",
};
