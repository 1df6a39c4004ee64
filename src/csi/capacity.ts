// The size a CreateVolume or ControllerExpandVolume gets for a CSI capacity range, as a pure function: rounded up to
// whole chunks (the copy-on-write unit, itself a multiple of every sector size), or to whole sectors when only that
// fits under the limit.
import { status } from "@grpc/grpc-js";
import { CsiError, invalidArgument } from "./errors.ts";

/** A decoded csi.v1.CapacityRange; 0 means unset. */
export interface CapacityRange {
  requiredBytes?: number;
  limitBytes?: number;
}

/** Size of a volume whose request names no capacity: 1 GiB. */
export const DEFAULT_VOLUME_BYTES = 1024 * 1024 * 1024;

/** What the size must respect besides the range. */
export interface SizeRules {
  chunkSizeBytes: number;
  sectorSize: number;
  /** A clone or restore is at least its source's size (default 0). */
  minimumBytes?: number;
}

const roundUp = (value: number, unit: number): number => Math.ceil(value / unit) * unit;
const roundDown = (value: number, unit: number): number => Math.floor(value / unit) * unit;

/**
 * The size for `range`: at least `requiredBytes` (and the source's size), at most `limitBytes`, preferring whole chunks.
 * Throws INVALID_ARGUMENT for negative or unsafe numbers and OUT_OF_RANGE when nothing fits.
 */
export function sizeForRange(range: CapacityRange | null | undefined, rules: SizeRules): number {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  for (const [field, value] of [["required_bytes", required], ["limit_bytes", limit]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalidArgument(`capacity_range.${field} must be a whole number of bytes from 0 to ${Number.MAX_SAFE_INTEGER}; got ${value}.`);
    }
  }
  if (limit > 0 && required > limit) {
    throw new CsiError(status.OUT_OF_RANGE, `capacity_range asks for at least ${required} bytes but at most ${limit}; required_bytes must not exceed limit_bytes.`);
  }
  const minimum = Math.max(required, rules.minimumBytes ?? 0);
  const wanted = minimum > 0 ? minimum : limit > 0 ? Math.min(DEFAULT_VOLUME_BYTES, limit) : DEFAULT_VOLUME_BYTES;
  for (const unit of [rules.chunkSizeBytes, rules.sectorSize]) {
    const size = roundUp(wanted, unit);
    if (limit === 0 || size <= limit) return size;
    // With no minimum asked for, the largest whole unit under the limit is also an answer.
    if (minimum === 0 && roundDown(limit, unit) > 0) return roundDown(limit, unit);
  }
  throw new CsiError(
    status.OUT_OF_RANGE,
    `No volume size fits capacity_range [${required}, ${limit}] bytes${(rules.minimumBytes ?? 0) > required ? ` and the source's ${rules.minimumBytes} bytes` : ""}: esan sizes are whole ${rules.sectorSize}-byte sectors.`,
  );
}

/** True when an existing volume of `sizeBytes` satisfies `range` (for idempotent CreateVolume and expansion). */
export function sizeSatisfies(sizeBytes: number, range: CapacityRange | null | undefined): boolean {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  return sizeBytes >= required && (limit === 0 || sizeBytes <= limit);
}
