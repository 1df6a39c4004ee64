import { expect, test } from "vitest";
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
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
} from "./constants.ts";
import { checkRequest, type ExportTerms, type RequestFields } from "./request-checks.ts";

const MiB = 1024 * 1024;
const terms: ExportTerms = {
  sizeBytes: 64 * MiB,
  minimumBlockSize: 512,
  maximumBlockSize: 32 * MiB,
  readOnly: false,
  flush: true,
  fua: true,
  trim: true,
  writeZeroes: true,
  fastZero: true,
  df: true,
  blockStatus: true,
};
const readOnly: ExportTerms = { ...terms, readOnly: true, fua: false, trim: false, writeZeroes: false, fastZero: false };
const plain: ExportTerms = { ...terms, df: false, blockStatus: false };

const req = (type: number, offset: number, length: number, flags = 0): RequestFields => ({ type, offset, length, flags });

test.each<[string, RequestFields, ExportTerms, string | null]>([
  ["read", req(NBD_CMD_READ, 0, 4096), terms, null],
  ["read with DF", req(NBD_CMD_READ, 0, 4096, NBD_CMD_FLAG_DF), terms, null],
  ["read with DF, DF not advertised", req(NBD_CMD_READ, 0, 4096, NBD_CMD_FLAG_DF), plain, "EINVAL"],
  ["write with FUA", req(NBD_CMD_WRITE, 512, 512, NBD_CMD_FLAG_FUA), terms, null],
  ["read ending at the export end", req(NBD_CMD_READ, 64 * MiB - 512, 512), terms, null],
  ["read past the end", req(NBD_CMD_READ, 64 * MiB - 512, 1024), terms, "EINVAL"],
  ["offset past 2^53", req(NBD_CMD_READ, Number.POSITIVE_INFINITY, 512), terms, "EINVAL"],
  ["write past the end", req(NBD_CMD_WRITE, 64 * MiB, 512), terms, "EINVAL"],
  ["unaligned offset", req(NBD_CMD_READ, 100, 512), terms, "EINVAL"],
  ["unaligned length", req(NBD_CMD_WRITE, 0, 100), terms, "EINVAL"],
  ["read over the maximum block size", req(NBD_CMD_READ, 0, 32 * MiB + 512), terms, "EINVAL"],
  ["zero over the maximum", req(NBD_CMD_WRITE_ZEROES, 0, 33 * MiB), terms, "EINVAL"],
  ["fast zero over the maximum", req(NBD_CMD_WRITE_ZEROES, 0, 33 * MiB, NBD_CMD_FLAG_FAST_ZERO), terms, null],
  ["trim over the maximum", req(NBD_CMD_TRIM, 0, 64 * MiB), terms, null],
  ["zero with NO_HOLE and FUA", req(NBD_CMD_WRITE_ZEROES, 0, 4096, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA), terms, null],
  ["length 0", req(NBD_CMD_READ, 0, 0), terms, "EINVAL"],
  ["unknown command", req(42, 0, 512), terms, "EINVAL"],
  ["CACHE (never advertised)", req(NBD_CMD_CACHE, 0, 512), terms, "EINVAL"],
  ["unknown flag", req(NBD_CMD_READ, 0, 512, 1 << 9), terms, "EINVAL"],
  ["REQ_ONE on a read", req(NBD_CMD_READ, 0, 512, NBD_CMD_FLAG_REQ_ONE), terms, "EINVAL"],
  ["flush", req(NBD_CMD_FLUSH, 0, 0), terms, null],
  ["flush with a length", req(NBD_CMD_FLUSH, 0, 512), terms, "EINVAL"],
  ["block status with REQ_ONE", req(NBD_CMD_BLOCK_STATUS, 0, 64 * MiB, NBD_CMD_FLAG_REQ_ONE), terms, null],
  ["block status without a context", req(NBD_CMD_BLOCK_STATUS, 0, 512), plain, "EINVAL"],
  ["write to a read-only export", req(NBD_CMD_WRITE, 0, 512), readOnly, "EPERM"],
  ["trim on a read-only export", req(NBD_CMD_TRIM, 0, 512), readOnly, "EPERM"],
  ["zero on a read-only export", req(NBD_CMD_WRITE_ZEROES, 0, 512), readOnly, "EPERM"],
  ["FUA on a read-only export (not advertised)", req(NBD_CMD_READ, 0, 512, NBD_CMD_FLAG_FUA), readOnly, "EINVAL"],
  ["read on a read-only export", req(NBD_CMD_READ, 0, 512), readOnly, null],
])("%s", (_name, request, exportTerms, expected) => {
  expect(checkRequest(request, exportTerms)?.errno ?? null).toBe(expected);
});
