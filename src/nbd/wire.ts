// Encoders for what the server sends (option replies, simple replies, structured chunks) and 64-bit field helpers.
import {
  NBD_REP_MAGIC,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  SIMPLE_REPLY_BYTES,
  STRUCTURED_HEADER_BYTES,
} from "./constants.ts";

const TWO_32 = 0x1_0000_0000;

/** Reads an unsigned 64-bit field as a number; values past 2^53 come back as Infinity, which fails every bounds check. */
export function readU64(buffer: Buffer, at: number): number {
  const high = buffer.readUInt32BE(at);
  if (high >= 0x20_0000) return Number.POSITIVE_INFINITY;
  return high * TWO_32 + buffer.readUInt32BE(at + 4);
}

/** Writes a non-negative safe integer as an unsigned 64-bit field. */
export function writeU64(buffer: Buffer, value: number, at: number): void {
  buffer.writeUInt32BE(Math.floor(value / TWO_32), at);
  buffer.writeUInt32BE(value >>> 0, at + 4);
}

/** The client's opaque 64-bit request handle, kept as two 32-bit halves to avoid BigInt on the hot path. */
export interface Handle {
  high: number;
  low: number;
}

/** One option reply: magic, option, reply type, length, payload. */
export function optionReply(option: number, type: number, payload?: Buffer): Buffer {
  const length = payload?.byteLength ?? 0;
  const out = Buffer.allocUnsafe(20 + length);
  out.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(type, 12);
  out.writeUInt32BE(length, 16);
  if (payload) payload.copy(out, 20);
  return out;
}

/** A simple reply header (error 0 means success; a READ's data follows it), written into `out` when given. */
export function simpleReply(handle: Handle, errno: number, out: Buffer = Buffer.allocUnsafe(SIMPLE_REPLY_BYTES)): Buffer {
  out.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(errno, 4);
  out.writeUInt32BE(handle.high, 8);
  out.writeUInt32BE(handle.low, 12);
  return out;
}

function structuredHeader(out: Buffer, handle: Handle, flags: number, type: number, length: number): void {
  out.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  out.writeUInt16BE(flags, 4);
  out.writeUInt16BE(type, 6);
  out.writeUInt32BE(handle.high, 8);
  out.writeUInt32BE(handle.low, 12);
  out.writeUInt32BE(length, 16);
}

/** Bytes of an OFFSET_DATA chunk before its data: the structured header and the offset. */
export const OFFSET_DATA_HEADER_BYTES = STRUCTURED_HEADER_BYTES + 8;

/** Header and offset of a final OFFSET_DATA chunk, written into the start of `out`; the data follows them. */
export function offsetDataHeader(handle: Handle, offset: number, dataLength: number, out: Buffer = Buffer.allocUnsafe(OFFSET_DATA_HEADER_BYTES)): Buffer {
  structuredHeader(out, handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 8 + dataLength);
  writeU64(out, offset, STRUCTURED_HEADER_BYTES);
  return out;
}

/** A final ERROR chunk with a short human-readable message (cut to the spec's 4096 bytes). */
export function errorChunk(handle: Handle, errno: number, message: string): Buffer {
  const text = Buffer.from(message, "utf8").subarray(0, 4096);
  const out = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES + 6 + text.byteLength);
  structuredHeader(out, handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6 + text.byteLength);
  out.writeUInt32BE(errno, STRUCTURED_HEADER_BYTES);
  out.writeUInt16BE(text.byteLength, STRUCTURED_HEADER_BYTES + 4);
  text.copy(out, STRUCTURED_HEADER_BYTES + 6);
  return out;
}

/** A final BLOCK_STATUS chunk: context id, then (length, flags) pairs. */
export function blockStatusChunk(handle: Handle, contextId: number, lengths: number[], flags: number[]): Buffer {
  const payload = 4 + 8 * lengths.length;
  const out = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES + payload);
  structuredHeader(out, handle, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, payload);
  out.writeUInt32BE(contextId, STRUCTURED_HEADER_BYTES);
  let at = STRUCTURED_HEADER_BYTES + 4;
  for (let i = 0; i < lengths.length; i++) {
    out.writeUInt32BE(lengths[i]!, at);
    out.writeUInt32BE(flags[i]!, at + 4);
    at += 8;
  }
  return out;
}
