import { describe, expect, it } from "vitest";
import { metadataMessages, rangesFrom } from "./snapshot-metadata-service.ts";

describe("rangesFrom", () => {
  it("drops ranges before the offset and cuts the one that straddles it", () => {
    const ranges = [
      { offset: 0, length: 100 },
      { offset: 200, length: 100 },
      { offset: 400, length: 50 },
    ];
    expect(rangesFrom(ranges, 0)).toEqual(ranges);
    expect(rangesFrom(ranges, 250)).toEqual([
      { offset: 250, length: 50 },
      { offset: 400, length: 50 },
    ]);
    expect(rangesFrom(ranges, 300)).toEqual([{ offset: 400, length: 50 }]);
    expect(rangesFrom(ranges, 450)).toEqual([]);
  });
});

describe("metadataMessages", () => {
  it("splits ranges into messages of max_results and sends one empty message for none", () => {
    const ranges = Array.from({ length: 5 }, (_, i) => ({ offset: i * 10, length: 5 }));
    const messages = metadataMessages(ranges, 100, 2);
    expect(messages.map((m) => (m.blockMetadata as unknown[]).length)).toEqual([2, 2, 1]);
    expect(messages[0]).toMatchObject({ blockMetadataType: "VARIABLE_LENGTH", volumeCapacityBytes: 100 });
    expect(metadataMessages([], 100, 2)).toEqual([{ blockMetadataType: "VARIABLE_LENGTH", volumeCapacityBytes: 100, blockMetadata: [] }]);
  });
});
