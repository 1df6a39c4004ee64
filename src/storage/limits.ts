// Pure snapshot-limit decisions: the per-volume count cap and the rolling-window rate cap.
import { SnapshotCountExceededError, SnapshotOperationRateExceededError } from "./errors.ts";
import type { SanLimits } from "./types.ts";

/** Throws SnapshotCountExceeded when a volume holding `held` snapshots may not take `adding` more. */
export function checkSnapshotCount(volumeId: string, held: number, adding: number, limits: SanLimits): void {
  if (held + adding > limits.maxSnapshotsPerVolume) {
    throw new SnapshotCountExceededError(
      `Cannot create snapshot of ${volumeId}: the volume allows ${limits.maxSnapshotsPerVolume} snapshots and has ${held}. ` +
        `Delete an old snapshot of it first.`,
      limits.maxSnapshotsPerVolume,
    );
  }
}

/** Creation times (ms) still inside the window that ends at `nowMs`, oldest first. */
export function creationsInWindow(creationTimesMs: readonly number[], nowMs: number, limits: SanLimits): number[] {
  const windowStart = nowMs - limits.snapshotRateWindowMs;
  return creationTimesMs.filter((t) => t > windowStart).sort((a, b) => a - b);
}

/**
 * Throws SnapshotOperationRateExceeded when the volume already made `snapshotRateCount` creations in the
 * rolling window. The message says when the next slot opens: when the oldest creation in the window leaves it.
 */
export function checkSnapshotRate(volumeId: string, creationTimesMs: readonly number[], nowMs: number, limits: SanLimits): void {
  const recent = creationsInWindow(creationTimesMs, nowMs, limits);
  if (recent.length < limits.snapshotRateCount) return;
  const oldestThatMustLeave = recent[recent.length - limits.snapshotRateCount] ?? nowMs;
  const nextSlotMs = oldestThatMustLeave + limits.snapshotRateWindowMs;
  const retryAfterMs = Math.max(1, nextSlotMs - nowMs);
  throw new SnapshotOperationRateExceededError(
    `Cannot create snapshot of ${volumeId}: the volume allows ${limits.snapshotRateCount} snapshot creations per ` +
      `${formatDuration(limits.snapshotRateWindowMs)} and has used them all; the next slot opens at ` +
      `${new Date(nextSlotMs).toISOString()} (in ${formatDuration(retryAfterMs)}). Retry then.`,
    limits.snapshotRateCount,
    retryAfterMs,
  );
}

/** "5m", "90s", "1h30m", "250ms": short human durations for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  let seconds = Math.ceil(ms / 1000);
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  return [hours ? `${hours}h` : "", minutes ? `${minutes}m` : "", seconds ? `${seconds}s` : ""].join("") || "0s";
}
