import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDataDir } from "../../../test/support/temp-dir.ts";
import { DirectoryStore } from "./store.ts";

let root: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir: root, cleanup } = tempDataDir("esan-store"));
});
afterEach(() => cleanup());

/** The pid of a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

describe("DirectoryStore", () => {
  it("discards the temporary files of writers that died mid-put, and keeps a live writer's", async () => {
    const dir = path.join(root, "fam", "member");
    fs.mkdirSync(dir, { recursive: true });
    const orphan = path.join(dir, `seg-g1-0.${deadPid()}.${crypto.randomUUID()}.tmp`);
    const live = path.join(dir, `seg-g1-1.${process.pid}.${crypto.randomUUID()}.tmp`);
    fs.writeFileSync(orphan, "half");
    fs.writeFileSync(live, "in flight");
    const first = new DirectoryStore(root);
    await first.put("fam/member/manifest-g1.json", Buffer.from("{}"));
    new DirectoryStore(root);
    expect(fs.existsSync(orphan)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
    expect(await first.list("fam/")).toEqual(["fam/member/manifest-g1.json"]);
  });
});
