// Pure parsers for the payloads of NBD_OPT_INFO/GO and NBD_OPT_{LIST,SET}_META_CONTEXT, and export reply payloads.
import { NBD_INFO_BLOCK_SIZE, NBD_INFO_DESCRIPTION, NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_MAX_STRING_BYTES } from "./constants.ts";
import { writeU64 } from "./wire.ts";

/** A malformed option payload: answered with NBD_REP_ERR_INVALID, the connection carries on. */
export class OptionSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OptionSyntaxError";
  }
}

/** NBD_OPT_INFO / NBD_OPT_GO request: an export name and the information items asked for. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

/** NBD_OPT_{LIST,SET}_META_CONTEXT request: an export name and the context queries. */
export interface MetaContextRequest {
  name: string;
  queries: string[];
}

/** Reads length-prefixed fields from an option payload, refusing to run past its end. */
class FieldReader {
  readonly #data: Buffer;
  #at = 0;

  constructor(data: Buffer) {
    this.#data = data;
  }

  get remaining(): number {
    return this.#data.byteLength - this.#at;
  }

  u16(): number {
    this.#need(2, "a 16-bit field");
    const value = this.#data.readUInt16BE(this.#at);
    this.#at += 2;
    return value;
  }

  u32(): number {
    this.#need(4, "a 32-bit field");
    const value = this.#data.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }

  string(length: number, what: string): string {
    if (length > NBD_MAX_STRING_BYTES) throw new OptionSyntaxError(`The ${what} is ${length} bytes; the limit is ${NBD_MAX_STRING_BYTES}.`);
    this.#need(length, `the ${what}`);
    const bytes = this.#data.subarray(this.#at, this.#at + length);
    this.#at += length;
    if (bytes.includes(0)) throw new OptionSyntaxError(`The ${what} contains a NUL byte.`);
    return bytes.toString("utf8");
  }

  #need(n: number, what: string): void {
    if (this.remaining < n) throw new OptionSyntaxError(`The option data ends before ${what}.`);
  }
}

/** Parses the payload of NBD_OPT_INFO and NBD_OPT_GO; every byte must be accounted for. */
export function parseInfoRequest(data: Buffer): InfoRequest {
  const reader = new FieldReader(data);
  const name = reader.string(reader.u32(), "export name");
  const count = reader.u16();
  if (reader.remaining !== count * 2) {
    throw new OptionSyntaxError(`The option announces ${count} information requests but carries ${reader.remaining} bytes for them.`);
  }
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(reader.u16());
  return { name, requests };
}

/** Parses the payload of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT; every byte must be accounted for. */
export function parseMetaContextRequest(data: Buffer): MetaContextRequest {
  const reader = new FieldReader(data);
  const name = reader.string(reader.u32(), "export name");
  const count = reader.u32();
  // Each query takes at least its 4-byte length, so a count beyond that is a lie we can refuse before looping.
  if (count * 4 > reader.remaining) throw new OptionSyntaxError(`The option announces ${count} queries but is too short for them.`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(reader.string(reader.u32(), "context query"));
  if (reader.remaining !== 0) throw new OptionSyntaxError(`The option has ${reader.remaining} bytes after its last query.`);
  return { name, queries };
}

/** NBD_INFO_EXPORT payload: type, size, transmission flags. */
export function infoExport(sizeBytes: number, transmissionFlags: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(NBD_INFO_EXPORT, 0);
  writeU64(out, sizeBytes, 2);
  out.writeUInt16BE(transmissionFlags, 10);
  return out;
}

/** NBD_INFO_BLOCK_SIZE payload: type, minimum, preferred, maximum. */
export function infoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const out = Buffer.alloc(14);
  out.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  out.writeUInt32BE(minimum, 2);
  out.writeUInt32BE(preferred, 6);
  out.writeUInt32BE(maximum, 10);
  return out;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION payload: type, then the string. */
export function infoString(type: typeof NBD_INFO_NAME | typeof NBD_INFO_DESCRIPTION, text: string): Buffer {
  const bytes = Buffer.from(text, "utf8").subarray(0, NBD_MAX_STRING_BYTES);
  const out = Buffer.alloc(2 + bytes.byteLength);
  out.writeUInt16BE(type, 0);
  bytes.copy(out, 2);
  return out;
}

/** NBD_REP_SERVER payload: name length, name, then the optional description. */
export function serverEntry(name: string, description?: string): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const descriptionBytes = Buffer.from(description ?? "", "utf8").subarray(0, NBD_MAX_STRING_BYTES);
  const out = Buffer.alloc(4 + nameBytes.byteLength + descriptionBytes.byteLength);
  out.writeUInt32BE(nameBytes.byteLength, 0);
  nameBytes.copy(out, 4);
  descriptionBytes.copy(out, 4 + nameBytes.byteLength);
  return out;
}

/** NBD_REP_META_CONTEXT payload: context id, then its name. */
export function metaContextEntry(id: number, name: string): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const out = Buffer.alloc(4 + nameBytes.byteLength);
  out.writeUInt32BE(id, 0);
  nameBytes.copy(out, 4);
  return out;
}
