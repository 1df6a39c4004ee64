// The tools env file that scripts/build-e2e-tools writes.
import { describe, expect, it } from "vitest";
import { parseEnvFile } from "./tools.ts";

describe("parseEnvFile", () => {
  it("reads KEY=VALUE lines, skipping comments and blank lines, keeping '=' inside values", () => {
    const values = parseEnvFile("# comment\nBIN_DIR=/a/b\n\n  SNAPSHOT_CRD_DIR=/c=d  \nnot a pair\n");
    expect([...values]).toEqual([
      ["BIN_DIR", "/a/b"],
      ["SNAPSHOT_CRD_DIR", "/c=d"],
    ]);
  });
});
