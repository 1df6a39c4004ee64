// Checks the durable tier's tests share: typed-error codes, attempts that keep the error, byte comparisons, check().
import { expect } from "vitest";
import { EsanError } from "../../src/storage/errors.ts";
import type { San } from "../../src/storage/san.ts";
import { firstDifference } from "../model/durable-model.ts";

/** An error's esan code, or a description of what else was thrown. */
export function codeOf(err: unknown): string {
  return err instanceof EsanError ? err.code : `not an EsanError (${err instanceof Error ? `${err.name}: ${err.message}` : String(err)})`;
}

export function describeError(err: unknown): string {
  return err instanceof Error ? `${codeOf(err)}: ${err.message}` : String(err);
}

/** Runs `fn`; returns the error it threw, or null. */
export async function attempt(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
    return null;
  } catch (err) {
    return err ?? new Error("threw a nullish value");
  }
}

/** Fails unless `actual` equals the expected bytes for `what`. */
export function sameBytes(label: string, what: string, actual: Uint8Array, expected: Uint8Array): void {
  const difference = firstDifference(actual, expected);
  if (difference !== "equal") throw new Error(`${label}: ${what} differs from the model: ${difference}`);
}

/** Fails unless the engine's consistency check (durable records included) finds nothing. */
export function checkEngine(san: San, label: string): void {
  const report = san.check();
  expect(report.faults, `${label}: san.check() faults`).toEqual([]);
  expect(report.ok, `${label}: san.check().ok`).toBe(true);
}
