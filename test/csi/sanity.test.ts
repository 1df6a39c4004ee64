// csi-sanity (kubernetes-csi/csi-test v5, built by scripts/setup) against the real driver: `esan csi --mode all` on one
// socket, and a controller and a node process on two (--csi.controllerendpoint), each in front of a real
// `esan san serve`, with the node attaching real loop devices as root. Zero failures, and nothing skipped that the
// driver's capabilities claim.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { freshSan, serve } from "../san/support.ts";
import { requirePrerequisites } from "../support/csi-node-env.ts";
import { killAll, startCsi } from "./support.ts";

const REPO = path.resolve(import.meta.dirname, "..", "..");
const CSI_SANITY = process.env.ESAN_CSI_SANITY ?? path.join(REPO, ".esan", "bin", "csi-sanity");
const missing = !fs.existsSync(CSI_SANITY) ? `csi-sanity is not built at ${CSI_SANITY}; run bash scripts/setup` : process.getuid?.() !== 0 ? "csi-sanity's node tests mount filesystems and need root" : null;

/**
 * Specs csi-sanity skips for esan, each for a capability esan does not claim or a flag these runs do not set. Any
 * other skipped spec fails the test: it would be a capability claimed but not tested.
 */
const EXPECTED_SKIPS: readonly RegExp[] = [
  /ModifyVolume|volume attribute class/, // MODIFY_VOLUME is not claimed.
  /already published but is incompatible/, // PUBLISH_READONLY is not claimed.
  /more volumes than the node max attach limit/, // --csi.testnodevolumeattachlimit is not set.
];

/** One spec of Ginkgo's JSON report. */
interface SpecReport {
  State: string;
  LeafNodeText: string;
  ContainerHierarchyTexts: string[] | null;
  Failure?: { Message: string };
}

/** What one csi-sanity run did. */
interface SanityResult {
  passed: string[];
  failed: { name: string; message: string }[];
  skipped: string[];
  output: string;
}

function runSanity(args: string[], reportFile: string): Promise<SanityResult> {
  return new Promise((resolve) => {
    execFile(CSI_SANITY, [...args, `-ginkgo.json-report=${reportFile}`, "-ginkgo.no-color"], { maxBuffer: 64 * 1024 * 1024, timeout: 1_500_000 }, (_error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      const reports = fs.existsSync(reportFile) ? (JSON.parse(fs.readFileSync(reportFile, "utf8")) as { SpecReports: SpecReport[] }[]) : [];
      const specs = reports.flatMap((r) => r.SpecReports ?? []).filter((s) => s.LeafNodeText !== "");
      const name = (s: SpecReport) => [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(" ");
      resolve({
        passed: specs.filter((s) => s.State === "passed").map(name),
        failed: specs.filter((s) => s.State !== "passed" && s.State !== "skipped" && s.State !== "pending").map((s) => ({ name: name(s), message: (s.Failure?.Message ?? s.State).split("\n").find((line) => line.includes("desc =")) ?? (s.Failure?.Message ?? s.State).split("\n")[0] ?? "" })),
        skipped: specs.filter((s) => s.State === "skipped").map(name),
        output,
      });
    });
  });
}

/** Asserts the run's outcome and leaves a one-line note of it in .esan/ (CI prints it). */
function expectClean(mode: string, result: SanityResult): void {
  const note = `csi-sanity (${mode}): ${result.passed.length} passed, ${result.failed.length} failed, ${result.skipped.length} skipped`;
  fs.mkdirSync(path.join(REPO, ".esan"), { recursive: true });
  fs.writeFileSync(path.join(REPO, ".esan", `csi-sanity-${mode}.txt`), `${note}\n${result.failed.map((f) => `FAILED ${f.name}: ${f.message.trim()}`).join("\n")}\n`);
  console.log(note);
  expect(result.passed.length, result.output.slice(-4000)).toBeGreaterThan(0);
  expect(result.failed, note).toEqual([]);
  expect(result.skipped.filter((name) => !EXPECTED_SKIPS.some((pattern) => pattern.test(name)))).toEqual([]);
}

afterEach(async () => {
  await killAll();
});

describe("csi-sanity", () => {
  beforeAll(() => requirePrerequisites(missing === null ? [] : [missing], "The csi-sanity runs"));

  it("passes against esan csi --mode all", { timeout: 1_800_000 }, async () => {
    const san = await freshSan(["--capacity", "4TiB"]);
    try {
      const served = await serve(san.dataDir);
      const socket = path.join(san.root, "csi.sock");
      const csi = await startCsi(["--mode", "all", "--endpoint", `unix://${socket}`, "--san", served.api, "--node-id", "sanity-node", "--state-dir", path.join(san.root, "node-state")]);
      const result = await runSanity(
        [`--csi.endpoint=unix://${socket}`, `--csi.mountdir=${path.join(san.root, "mnt")}`, `--csi.stagingdir=${path.join(san.root, "staging")}`],
        path.join(san.root, "report.json"),
      );
      await csi.stop();
      await served.stop();
      expectClean("all", result);
    } finally {
      san.cleanup();
    }
  });

  it("passes against split controller and node sockets", { timeout: 1_800_000 }, async () => {
    const san = await freshSan(["--capacity", "4TiB"]);
    try {
      const served = await serve(san.dataDir);
      const controllerSocket = path.join(san.root, "controller.sock");
      const nodeSocket = path.join(san.root, "node.sock");
      // The controller knows the one node, so a publish to any other node id is NOT_FOUND.
      const controller = await startCsi(["--mode", "controller", "--endpoint", `unix://${controllerSocket}`, "--san", served.api, "--node-id", "sanity-node"]);
      const node = await startCsi(["--mode", "node", "--endpoint", `unix://${nodeSocket}`, "--node-id", "sanity-node", "--state-dir", path.join(san.root, "node-state")]);
      const result = await runSanity(
        [
          `--csi.endpoint=unix://${nodeSocket}`,
          `--csi.controllerendpoint=unix://${controllerSocket}`,
          `--csi.mountdir=${path.join(san.root, "mnt")}`,
          `--csi.stagingdir=${path.join(san.root, "staging")}`,
        ],
        path.join(san.root, "report.json"),
      );
      await node.stop();
      await controller.stop();
      await served.stop();
      expectClean("split", result);
    } finally {
      san.cleanup();
    }
  });
});
