import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { ByteQueue } from "./byte-queue.ts";

describe("ByteQueue", () => {
  test("returns views inside one chunk and copies across chunks", () => {
    const queue = new ByteQueue();
    const chunk = Buffer.from("abcdef");
    queue.push(chunk);
    queue.push(Buffer.from("ghij"));
    const view = queue.take(3);
    expect(view.toString()).toBe("abc");
    expect(view.buffer).toBe(chunk.buffer);
    expect(queue.peek(5).toString()).toBe("defgh");
    expect(queue.take(5).toString()).toBe("defgh");
    expect(queue.length).toBe(2);
    expect(queue.take(2).toString()).toBe("ij");
    expect(queue.length).toBe(0);
  });

  test("own copies what is left out of chunks whose memory is about to be reused; takeInto consumes into a buffer", () => {
    const queue = new ByteQueue();
    const reused = Buffer.from("abcdef");
    queue.push(reused);
    queue.skip(2);
    queue.own();
    reused.fill(0x78);
    expect(queue.peek(4).toString()).toBe("cdef");
    const out = Buffer.alloc(6, 0x2e);
    queue.push(Buffer.from("gh"));
    queue.takeInto(out, 1, 5);
    expect(out.toString()).toBe(".cdefg");
    expect(queue.take(1).toString()).toBe("h");
  });

  test("skip drops at most what is queued", () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from("abc"));
    expect(queue.skip(10)).toBe(3);
    expect(queue.length).toBe(0);
    expect(() => queue.take(1)).toThrow(RangeError);
  });

  test("any split of a stream reads back the same bytes (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 40 }), (chunks, takes) => {
        const queue = new ByteQueue();
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        for (const c of chunks) queue.push(Buffer.from(c));
        let at = 0;
        for (const n of takes) {
          if (n > queue.length) continue;
          expect(queue.peek(n).equals(all.subarray(at, at + n))).toBe(true);
          expect(queue.take(n).equals(all.subarray(at, at + n))).toBe(true);
          at += n;
        }
        expect(queue.length).toBe(all.byteLength - at);
      }),
    );
  });

  test("many small chunks stay linear (no quadratic re-concatenation)", () => {
    const queue = new ByteQueue();
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) {
      queue.push(Buffer.alloc(7, i & 0xff));
      if (queue.length >= 28) queue.take(28);
    }
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
