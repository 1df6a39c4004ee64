// Sizes, durations and rates as people type them (1GiB, 5m, 7/5m), parsed strictly and formatted with IEC units.
import { InvalidArgumentError } from "../storage/errors.ts";

const KiB = 1024;

/** Binary multipliers by lower-cased suffix; K and KiB both mean 1024, as in `az` and dd. */
const SIZE_MULTIPLIERS: ReadonlyMap<string, number> = new Map([
  ["", 1],
  ["k", KiB],
  ["kib", KiB],
  ["m", KiB ** 2],
  ["mib", KiB ** 2],
  ["g", KiB ** 3],
  ["gib", KiB ** 3],
  ["t", KiB ** 4],
  ["tib", KiB ** 4],
  ["p", KiB ** 5],
  ["pib", KiB ** 5],
]);

const SIZE_PATTERN = /^(\d+)\s*([a-z]*)$/i;

/** Parses a byte count: plain bytes or an integer with a K/KiB, M/MiB, G/GiB, T/TiB or P/PiB suffix. `what` names the option in errors. */
export function parseSize(text: string, what = "size"): number {
  const match = SIZE_PATTERN.exec(text.trim());
  const multiplier = match ? SIZE_MULTIPLIERS.get((match[2] ?? "").toLowerCase()) : undefined;
  if (!match || multiplier === undefined) {
    throw new InvalidArgumentError(
      `Cannot read ${what} "${text}": write plain bytes or a whole number with a binary suffix, such as 4096, 64KiB, 1GiB or 10TiB (K, M, G, T, P mean the same binary units).`,
    );
  }
  const bytes = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(`Cannot use ${what} "${text}": it is ${bytes} bytes, more than the largest supported ${Number.MAX_SAFE_INTEGER}.`);
  }
  return bytes;
}

const IEC_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Formats a byte count for people: the largest IEC unit it reaches, up to two decimals (1536 -> "1.5 KiB"). */
export function formatSize(bytes: number): string {
  let unitIndex = 0;
  let value = bytes;
  while (unitIndex < IEC_UNITS.length - 1 && Math.abs(value) >= KiB) {
    value /= KiB;
    unitIndex += 1;
  }
  const rounded = Math.round(value * 100) / 100;
  return `${rounded} ${IEC_UNITS[unitIndex]}`;
}

const DURATION_MS: ReadonlyMap<string, number> = new Map([
  ["ms", 1],
  ["s", 1000],
  ["m", 60_000],
  ["h", 3_600_000],
  ["d", 86_400_000],
]);

const DURATION_PATTERN = /^(\d+)\s*(ms|s|m|h|d)$/i;

/** Parses a duration such as 30s, 5m, 1h, 1d or 500ms into milliseconds; the unit is required. */
export function parseDuration(text: string, what = "duration"): number {
  const match = DURATION_PATTERN.exec(text.trim());
  const unitMs = match ? DURATION_MS.get((match[2] ?? "").toLowerCase()) : undefined;
  if (!match || unitMs === undefined) {
    throw new InvalidArgumentError(`Cannot read ${what} "${text}": write a whole number with a unit, such as 30s, 5m, 1h, 1d or 500ms.`);
  }
  const ms = Number(match[1]) * unitMs;
  if (ms <= 0 || !Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError(`Cannot use ${what} "${text}": it must be longer than zero.`);
  }
  return ms;
}

/** Formats milliseconds with the largest unit that divides them exactly (300000 -> "5m"). */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    const unitMs = DURATION_MS.get(unit) ?? 1;
    if (ms >= unitMs && ms % unitMs === 0) return `${ms / unitMs}${unit}`;
  }
  return `${ms}ms`;
}

/** A snapshot rate cap: at most `count` creations per volume in any window of `windowMs`. */
export interface SnapshotRate {
  count: number;
  windowMs: number;
}

/** Parses COUNT/DURATION, e.g. "7/5m" = seven snapshot creations per volume per five minutes. */
export function parseRate(text: string, what = "snapshot rate"): SnapshotRate {
  const parts = text.trim().split("/");
  if (parts.length !== 2 || !/^\d+$/.test(parts[0]?.trim() ?? "")) {
    throw new InvalidArgumentError(`Cannot read ${what} "${text}": write COUNT/DURATION, such as 7/5m for seven per five minutes.`);
  }
  const count = parseCount(parts[0] ?? "", what);
  return { count, windowMs: parseDuration(parts[1] ?? "", what) };
}

/** Parses a whole number greater than zero (counts and limits). */
export function parseCount(text: string, what = "count"): number {
  const trimmed = text.trim();
  const value = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`Cannot read ${what} "${text}": write a whole number greater than zero.`);
  }
  return value;
}
