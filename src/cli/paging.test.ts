// Tests that listAll follows nextToken to the end and stops on an empty or repeated token.
import { describe, expect, it } from "vitest";
import type { ListPage } from "../storage/types.ts";
import { listAll } from "./paging.ts";

describe("listAll", () => {
  it.each([
    { name: "a single page", pages: { "": { entries: [1, 2], nextToken: "" } }, all: [1, 2] },
    {
      name: "three pages",
      pages: { "": { entries: [1], nextToken: "a" }, a: { entries: [2], nextToken: "b" }, b: { entries: [3], nextToken: "" } },
      all: [1, 2, 3],
    },
    { name: "a token that repeats", pages: { "": { entries: [1], nextToken: "a" }, a: { entries: [2], nextToken: "a" } }, all: [1, 2] },
  ])("collects $name", async ({ pages, all }) => {
    const table = pages as Record<string, ListPage<number>>;
    const asked: Array<string | undefined> = [];
    const result = await listAll((token) => {
      asked.push(token);
      const page = table[token ?? ""];
      if (!page) throw new Error(`no page ${token}`);
      return page;
    });
    expect(result).toEqual(all);
    expect(asked[0]).toBeUndefined();
  });
});
