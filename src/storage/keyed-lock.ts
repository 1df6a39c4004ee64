// Per-key mutual exclusion for async operations: same-key calls serialize or are refused, other keys run freely.
import { BusyError } from "./errors.ts";

/** A lock per key (e.g. a volume id). Held locks release in `finally`, so a throwing holder never wedges a key. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `key` is done. */
  async run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Runs `fn` only if nobody holds `key`; otherwise throws Busy naming `what`, so a caller can map it to ABORTED. */
  async tryRun<T>(key: string, what: string, fn: () => Promise<T> | T): Promise<T> {
    if (this.#tails.has(key)) {
      throw new BusyError(`Cannot ${what}: another operation on ${key} is in progress. Retry when it completes.`);
    }
    return this.run(key, fn);
  }

  /** True while some operation holds or waits for `key`. */
  isHeld(key: string): boolean {
    return this.#tails.has(key);
  }
}
