// Tests of the RPC table's pure parts: range batching for streamed replies, request checks, and what gets logged.
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../storage/errors.ts";
import { SAN_RPCS, rangeBatches, requestSummary } from "./api-handlers.ts";
import type { SanClient } from "./san-client.ts";

describe("rangeBatches", () => {
  const ranges = Array.from({ length: 5 }, (_, i) => ({ offset: i * 10, length: 5 }));

  it.each([
    { perMessage: 2, sizes: [2, 2, 1] },
    { perMessage: 5, sizes: [5] },
    { perMessage: 100, sizes: [5] },
  ])("splits 5 ranges into messages of at most $perMessage", ({ perMessage, sizes }) => {
    const messages = rangeBatches(ranges, { changedBytes: 25 }, perMessage) as Array<{ changedBytes: number; ranges: unknown[] }>;
    expect(messages.map((m) => m.ranges.length)).toEqual(sizes);
    expect(messages.every((m) => m.changedBytes === 25)).toBe(true);
    expect(messages.flatMap((m) => m.ranges)).toEqual(ranges);
  });

  it("sends one empty message when there are no ranges, so totals still arrive", () => {
    expect(rangeBatches([], { changedBytes: 0 })).toEqual([{ changedBytes: 0, ranges: [] }]);
  });
});

describe("request checks", () => {
  const client = {} as SanClient;

  it.each([
    { rpc: "Read", request: { imageId: "vg/a", offset: 2 ** 53, length: 1 }, text: "offset must be a whole number" },
    { rpc: "Write", request: { volumeId: "vg/a", offset: 0, data: "text" }, text: "data must be bytes" },
    { rpc: "GetVolume", request: { id: 7 }, text: "id must be a string" },
    { rpc: "CreateGroupSnapshot", request: { volumeGroup: "vg", name: "g", volumeIds: ["vg/a", 1] }, text: "volumeIds must hold strings" },
  ])("refuses a malformed $rpc with InvalidArgument", async ({ rpc, request, text }) => {
    const handler = SAN_RPCS[rpc];
    if (!handler) throw new Error(`no rpc ${rpc}`);
    const err = await handler.handle(request, client).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain(text);
  });

  it("covers every method of the service definition", async () => {
    const { sanServiceDefinition } = await import("./proto.ts");
    expect(Object.keys(SAN_RPCS).sort()).toEqual(Object.keys(sanServiceDefinition()).sort());
  });
});

describe("requestSummary", () => {
  it("keeps ids, node and sizes, and replaces data with its length", () => {
    expect(requestSummary({ volumeId: "vg/a", nodeId: "n1", offset: 0, data: Buffer.alloc(9), fua: true, pskKey: "secret" })).toEqual({
      volumeId: "vg/a",
      nodeId: "n1",
      offset: 0,
      dataBytes: 9,
    });
  });
});
