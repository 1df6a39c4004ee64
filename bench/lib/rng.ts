// Seeded randomness for benchmarks, so every run writes the same offsets and runs stay comparable.

/** A uniform generator of integers in [0, bound). */
export type RandomInt = (bound: number) => number;

/** A deterministic generator (mulberry32) seeded with `seed`. */
export function seededRandomInt(seed: number): RandomInt {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (bound) => Math.floor(next() * bound);
}

/** `count` distinct integers from [0, bound), in random order (Floyd's algorithm, O(count) memory). */
export function sampleDistinct(random: RandomInt, bound: number, count: number): number[] {
  if (count > bound) throw new RangeError(`Cannot pick ${count} distinct values from ${bound}.`);
  const chosen = new Set<number>();
  for (let j = bound - count; j < bound; j++) {
    const t = random(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  return shuffle(random, [...chosen]);
}

/** Shuffles `items` in place (Fisher–Yates) and returns it. */
export function shuffle<T>(random: RandomInt, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random(i + 1);
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}
