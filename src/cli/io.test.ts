// Tests that streaming writes and reads go to the engine in bounded chunks, in order, and cover exactly the bytes asked.
import { describe, expect, it } from "vitest";
import { EsanError } from "../storage/errors.ts";
import { readRange, readToSink, writeFromStream, type ImageReader, type VolumeWriter } from "./io.ts";

/** A flat in-memory volume that records every call, standing in for the engine. */
function fakeVolume(sizeBytes: number): VolumeWriter & ImageReader & { data: Buffer; calls: string[] } {
  const data = Buffer.alloc(sizeBytes);
  const calls: string[] = [];
  return {
    data,
    calls,
    write(_id, offset, bytes) {
      calls.push(`write ${offset}+${bytes.length}`);
      data.set(bytes, offset);
    },
    flush() {
      calls.push("flush");
    },
    read(_id, offset, length) {
      calls.push(`read ${offset}+${length}`);
      return Buffer.from(data.subarray(offset, offset + length));
    },
  };
}

describe("writeFromStream", () => {
  it.each([
    { name: "small pieces coalesced into full chunks", pieces: [3, 3, 3, 3], chunk: 4, offset: 0, writes: ["write 0+4", "write 4+4", "write 8+4"] },
    { name: "one large piece split into chunks", pieces: [10], chunk: 4, offset: 2, writes: ["write 2+4", "write 6+4", "write 10+2"] },
    { name: "an exact multiple", pieces: [4, 4], chunk: 4, offset: 0, writes: ["write 0+4", "write 4+4"] },
    { name: "an empty stream", pieces: [], chunk: 4, offset: 0, writes: [] },
  ])("writes $name, then flushes", async ({ pieces, chunk, offset, writes }) => {
    const volume = fakeVolume(64);
    let next = 1;
    const source = pieces.map((length) => Buffer.from(Array.from({ length }, () => next++)));
    const written = await writeFromStream(volume, "vg/v", offset, source, chunk);
    const expected = Buffer.concat(source);
    expect(written).toBe(expected.length);
    expect(volume.calls).toEqual([...writes, "flush"]);
    expect(volume.data.subarray(offset, offset + expected.length)).toEqual(expected);
  });

  it("accepts strings and async sources", async () => {
    const volume = fakeVolume(16);
    async function* source() {
      yield await Promise.resolve("ab");
      yield Buffer.from("cd");
    }
    expect(await writeFromStream(volume, "vg/v", 1, source(), 3)).toBe(4);
    expect(volume.data.subarray(0, 6).toString("latin1")).toBe("\0abcd\0");
  });
});

describe("readToSink", () => {
  it.each([
    { offset: 0, length: 10, chunk: 4, reads: ["read 0+4", "read 4+4", "read 8+2"] },
    { offset: 3, length: 4, chunk: 4, reads: ["read 3+4"] },
    { offset: 5, length: 0, chunk: 4, reads: [] },
  ])("reads $length bytes from $offset in chunks of $chunk", async ({ offset, length, chunk, reads }) => {
    const volume = fakeVolume(16);
    volume.data.set(Buffer.from("0123456789abcdef"));
    const received: Buffer[] = [];
    await readToSink(volume, "vg/v", offset, length, (piece) => void received.push(piece), chunk);
    expect(volume.calls).toEqual(reads);
    expect(Buffer.concat(received).toString()).toBe("0123456789abcdef".slice(offset, offset + length));
  });

  it("waits for an asynchronous sink before reading on", async () => {
    const volume = fakeVolume(8);
    const order: string[] = [];
    await readToSink(
      volume,
      "vg/v",
      0,
      8,
      async () => {
        order.push("sink start");
        await new Promise((resolve) => setImmediate(resolve));
        order.push("sink end");
      },
      4,
    );
    expect(order).toEqual(["sink start", "sink end", "sink start", "sink end"]);
  });
});

describe("readRange", () => {
  it.each([
    { size: 100, offset: undefined, length: undefined, range: { offset: 0, length: 100 } },
    { size: 100, offset: 40, length: undefined, range: { offset: 40, length: 60 } },
    { size: 100, offset: 40, length: 10, range: { offset: 40, length: 10 } },
    { size: 100, offset: undefined, length: 10, range: { offset: 0, length: 10 } },
    { size: 100, offset: 100, length: undefined, range: { offset: 100, length: 0 } },
  ])("covers $range for offset $offset length $length", ({ size, offset, length, range }) => {
    expect(readRange("vg/v", size, offset, length)).toEqual(range);
  });

  it("refuses an offset past the end with OutOfRange", () => {
    expect(() => readRange("vg/v", 100, 101)).toThrow(EsanError);
    expect(() => readRange("vg/v", 100, 101)).toThrow("Cannot read vg/v from offset 101: the image is only 100 bytes.");
  });
});
