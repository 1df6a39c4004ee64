// The admin CLI through a running `esan san serve` (--san unix://...) prints exactly what it prints on a data directory
// opened directly (--data-dir), for results, errors and data; the service also refuses a second owner of its directory.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanEnv, expectError, freshSan, killServers, KiB, MiB, run, serve, type Run, type Served } from "./support.ts";

/** One step of the script both SANs run. */
interface Step {
  args: string[];
  input?: Buffer;
  /** Also compare the human rendering, not only --json. */
  human?: boolean;
}

const payload1 = randomBytes(300 * KiB);
const payload2 = randomBytes(100 * KiB);

/** The script both SANs run, in phases run in order (each phase is one test, so each stays well inside its timeout). */
const PHASES: Array<{ name: string; steps: Step[] }> = [
  {
    name: "creating, writing, snapshotting and cloning",
    steps: [
      { args: ["volume-group", "create", "vg1"], human: true },
      { args: ["volume", "create", "vg1/a", "--size", "4MiB"] },
      { args: ["volume", "create", "vg1/b", "--size", "1MiB", "--sector-size", "4096"] },
      { args: ["volume", "write", "vg1/a", "--offset", "64KiB"], input: payload1 },
      { args: ["snapshot", "create", "vg1/s1", "--source", "vg1/a"], human: true },
      { args: ["volume", "write", "vg1/a", "--offset", "1MiB"], input: payload2 },
      { args: ["snapshot", "diff", "vg1/s1", "vg1/a"], human: true },
      { args: ["volume", "create", "vg1/c", "--size", "8MiB", "--source", "snapshot:vg1/s1"] },
      { args: ["group-snapshot", "create", "vg1/g", "--volumes", "a,b"], human: true },
      { args: ["volume", "resize", "vg1/c", "--size", "16MiB"] },
    ],
  },
  {
    name: "listing and showing",
    steps: [
      { args: ["volume", "list"], human: true },
      { args: ["snapshot", "list"], human: true },
      { args: ["group-snapshot", "list"] },
      { args: ["group-snapshot", "show", "vg1/g"] },
      { args: ["snapshot", "show", "vg1/s1"], human: true },
      { args: ["volume", "show", "vg1/a"], human: true },
    ],
  },
  {
    name: "attaching and detaching",
    steps: [
      { args: ["volume", "attach", "vg1/b", "--node", "node-1"] },
      { args: ["volume", "attachments"], human: true },
      { args: ["volume", "delete", "vg1/b"], human: true },
      { args: ["volume", "detach", "vg1/b", "--node", "node-1"], human: true },
      { args: ["volume", "detach", "vg1/b", "--node", "node-1"] },
    ],
  },
  {
    name: "refusals",
    steps: [
      { args: ["volume", "show", "vg1/nope"], human: true },
      { args: ["volume", "create", "vg1/Bad_Name", "--size", "1MiB"], human: true },
      { args: ["volume", "resize", "vg1/a", "--size", "1MiB"], human: true },
      { args: ["volume", "write", "vg1/a", "--offset", "4MiB"], input: Buffer.from("x"), human: true },
      { args: ["volume", "write", "vg1/s1"], input: Buffer.from("x") },
      { args: ["volume", "create", "vg1/huge", "--size", "2GiB"] },
      { args: ["snapshot", "delete", "vg1/g-a"] },
      { args: ["volume-group", "delete", "vg1"] },
    ],
  },
  {
    name: "deleting, usage and the consistency check",
    steps: [
      { args: ["group-snapshot", "delete", "vg1/g"] },
      { args: ["snapshot", "delete", "vg1/s1"] },
      { args: ["san", "show"], human: true },
      { args: ["check"], human: true },
    ],
  },
];

/** Replaces what legitimately differs between two SANs (ids, times, keys, paths) with placeholders. */
function normalize(text: string, dataDir: string): string {
  return text
    .replaceAll(dataDir, "DATA_DIR")
    .replace(/"(uniqueId|sourceUniqueId|createdAt|pskIdentity|pskKey)": "[^"]*"/g, '"$1": "*"')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, "TIME")
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "UUID")
    .replace(/esan-node-1-[0-9a-f]{16}/g, "IDENTITY")
    .replace(/[0-9a-f]{64}/g, "KEY");
}

function describeRun(result: Run, dataDir: string): { code: number; stdout: string; stderr: string } {
  return { code: result.code, stdout: normalize(result.stdout.toString("utf8"), dataDir), stderr: normalize(result.stderr, dataDir) };
}

describe("esan CLI through a running SAN service", () => {
  let direct: Awaited<ReturnType<typeof freshSan>>;
  let served: Awaited<ReturnType<typeof freshSan>>;
  let server: Served;

  beforeAll(async () => {
    [direct, served] = await Promise.all([freshSan(), freshSan()]);
    server = await serve(served.dataDir);
  });

  afterAll(async () => {
    await killServers();
    direct.cleanup();
    served.cleanup();
  });

  it.each(PHASES)("prints the same JSON, human text, errors and exit codes with --san as with --data-dir: $name", { timeout: 300_000 }, async ({ steps }) => {
    for (const step of steps) {
      const modes = step.human ? [["--json"], []] : [["--json"]];
      for (const mode of modes) {
        const [viaDir, viaApi] = await Promise.all([
          run([...step.args, ...mode, "--data-dir", direct.dataDir], { input: step.input ?? "" }),
          run([...step.args, ...mode, "--san", server.api], { input: step.input ?? "" }),
        ]);
        const label = `esan ${step.args.join(" ")} ${mode.join(" ")}`;
        expect(describeRun(viaApi, served.dataDir), label).toEqual(describeRun(viaDir, direct.dataDir));
      }
    }
  });

  it("reads back identical bytes through the API and from the directory", async () => {
    const viaApi = await run(["volume", "read", "vg1/a", "--san", server.api]);
    expect(viaApi.code, viaApi.stderr).toBe(0);
    const viaDir = await run(["volume", "read", "vg1/a", "--data-dir", direct.dataDir]);
    expect(viaApi.stdout.equals(viaDir.stdout)).toBe(true);
    expect(viaApi.stdout.subarray(64 * KiB, 64 * KiB + payload1.length).equals(payload1)).toBe(true);
    expect(viaApi.stdout.length).toBe(4 * MiB);
  });

  it("takes the service from ESAN_SAN, and lets an explicit --data-dir win over it", async () => {
    const listed = await run(["volume", "list", "--json"], { env: cleanEnv({ ESAN_SAN: server.api, ESAN_DATA_DIR: served.dataDir }) });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout.toString()) as Array<{ id: string }>).map((v) => v.id)).toContain("vg1/a");

    const held = await run(["volume", "list", "--data-dir", served.dataDir], { env: cleanEnv({ ESAN_SAN: server.api }) });
    const sentence = expectError(held, "DataDirInUse");
    expect(sentence).toContain(`data directory ${served.dataDir} is in use by pid ${server.endpoints.pid}`);
  });

  it("refuses --san together with --data-dir, and --san for san create and serve, as usage errors", async () => {
    const both = await run(["volume", "list", "--san", server.api, "--data-dir", served.dataDir]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("pass either --san");
    const create = await run(["san", "create", "--capacity", "1GiB", "--san", server.api]);
    expect(create.code).toBe(2);
    expect(create.stderr).toContain("works on a data directory");
  });

  it("says when no service answers at --san", async () => {
    const sentence = expectError(await run(["volume", "list", "--san", `unix://${served.root}/nobody.sock`]), "Unavailable");
    expect(sentence).toContain(`Cannot reach the SAN API at unix://${served.root}/nobody.sock`);
  });

  it("refuses a second `san serve` on the same directory with the DataDirInUse sentence", async () => {
    const second = await run(["san", "serve", "--data-dir", served.dataDir]);
    const sentence = expectError(second, "DataDirInUse");
    expect(sentence).toBe(`data directory ${served.dataDir} is in use by pid ${server.endpoints.pid}; stop that process or use its API instead.`);
  });
});
