// Node plugin restarts, as root against a real `esan san serve`: the plugin process is killed with SIGKILL while a
// volume is mounted and started again. nbdfuse runs in a session of its own, so the filesystem stays writable through
// the crash and the new process adopts it; when nbdfuse died too (as in a container restart), the new process
// re-attaches an unpublished staging before serving, and reports a published one as abnormal until it is unpublished.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { StagingRecord } from "../../src/csi/node/staging-store.ts";
import type { VolumeCapability } from "../../src/csi/node/types.ts";
import { runOk, waitUntil } from "../support/block-process.ts";
import { makeRoot, MiB, missingNodePrerequisites, processesUnder, requirePrerequisites, startSan, sweep, type TestSan } from "../support/csi-node-env.ts";

const NODE_ID = "node-r";
const HOST = path.resolve(import.meta.dirname, "..", "support", "csi-node-host.ts");
const NODE_BIN = path.resolve(import.meta.dirname, "..", "..", "node_modules", ".bin", "node");
const missing = await missingNodePrerequisites();
const capability: VolumeCapability = { mount: { fsType: "ext4", mountFlags: [] }, accessMode: { mode: "SINGLE_NODE_WRITER" }, accessType: "mount" };

/** One node plugin process, driven over JSON lines. */
class NodeHost {
  readonly child: ChildProcess;
  readonly ready: Promise<{ recovered: Record<string, string> }>;
  readonly exited: Promise<void>;
  #nextId = 1;
  #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error & { code?: number }) => void }>();
  stderr = "";

  constructor(stateDir: string) {
    this.child = spawn(fs.existsSync(NODE_BIN) ? NODE_BIN : "node", ["--no-warnings", HOST, stateDir, NODE_ID], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stderr?.setEncoding("utf8").on("data", (text: string) => (this.stderr = (this.stderr + text).slice(-20_000)));
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    const lines = readline.createInterface({ input: this.child.stdout! });
    this.ready = new Promise((resolve, reject) => {
      void this.exited.then(() => reject(new Error(`The node plugin exited before it was ready:\n${this.stderr}`)));
      lines.on("line", (line) => {
        const message = JSON.parse(line) as { ready?: boolean; recovered?: Record<string, string>; id?: number; result?: unknown; error?: { code: number; message: string } };
        if (message.ready) resolve({ recovered: message.recovered ?? {} });
        const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (!pending || message.id === undefined) return;
        this.#pending.delete(message.id);
        if (message.error) pending.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
        else pending.resolve(message.result);
      });
    });
  }

  /** Calls a handler in the plugin process. */
  call<T = unknown>(method: string, request: unknown): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.stdin?.write(`${JSON.stringify({ id, method, request })}\n`);
    });
  }

  /** SIGKILL, as a crash or an OOM kill would; resolves once the process is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}

describe("CSI node plugin restarts", () => {
  beforeAll(() => requirePrerequisites(missing, "The CSI node restart tests"));

  let root: string;
  let san: TestSan;
  const hosts: NodeHost[] = [];
  let count = 0;

  const stateDir = () => path.join(root, "state");
  const start = async () => {
    const host = new NodeHost(stateDir());
    hosts.push(host);
    return { host, ...(await host.ready) };
  };
  /** The pid of the nbdfuse serving `volumeId`, from the plugin's record. */
  const nbdfusePid = (): number => {
    const volumes = path.join(stateDir(), "volumes");
    const [dir] = fs.readdirSync(volumes);
    const record = JSON.parse(fs.readFileSync(path.join(volumes, dir!, "staging.json"), "utf8")) as StagingRecord;
    if (record.attachment?.kind !== "nbdfuse") throw new Error("expected an nbdfuse attachment");
    return record.attachment.pid;
  };
  const isRunning = (pid: number) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
    } catch {
      return false;
    }
  };
  /** Writes a file, syncs the filesystem and reads it back. */
  const writeSyncRead = async (dir: string, name: string): Promise<Buffer> => {
    const content = randomBytes(128 * 1024);
    fs.writeFileSync(path.join(dir, name), content);
    await runOk("sync", ["-f", dir]);
    expect(fs.readFileSync(path.join(dir, name)).equals(content)).toBe(true);
    return content;
  };

  async function newVolume(): Promise<{ volumeId: string; publishContext: Record<string, string>; staging: string; target: string }> {
    const name = `r${++count}`;
    const volumeId = await san.createVolume(name, 64 * MiB);
    return { volumeId, publishContext: await san.publishContext(volumeId, NODE_ID), staging: path.join(root, "staging", name), target: path.join(root, "pods", name) };
  }

  beforeAll(async () => {
    root = makeRoot("esan-csi-restart");
    san = await startSan(root);
  });

  afterEach(async () => {
    for (const host of hosts.splice(0)) await host.kill();
    const leftovers = await sweep(root);
    fs.rmSync(stateDir(), { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  afterAll(async () => {
    for (const host of hosts.splice(0)) await host.kill();
    await sweep(root);
    await san?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("keeps a mounted filesystem writable through a SIGKILL of the plugin, and the restarted plugin adopts it", async () => {
    const { volumeId, publishContext, staging, target } = await newVolume();
    const first = await start();
    await first.host.call("nodeStageVolume", { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    await first.host.call("nodePublishVolume", { volumeId, publishContext, stagingTargetPath: staging, targetPath: target, volumeCapability: capability });
    const files = new Map<string, Buffer>([["before-kill.bin", await writeSyncRead(target, "before-kill.bin")]]);
    const helper = nbdfusePid();

    await first.host.kill();
    expect(isRunning(helper)).toBe(true);
    files.set("while-down.bin", await writeSyncRead(target, "while-down.bin"));

    const second = await start();
    expect(second.recovered).toEqual({ [volumeId]: "adopted" });
    files.set("after-restart.bin", await writeSyncRead(target, "after-restart.bin"));
    const stats = await second.host.call<{ volumeCondition: { abnormal: boolean } }>("nodeGetVolumeStats", { volumeId, volumePath: target });
    expect(stats.volumeCondition.abnormal).toBe(false);

    // Everything reached the SAN: take it all down, stage it afresh, and read the files back.
    await second.host.call("nodeUnpublishVolume", { volumeId, targetPath: target });
    await second.host.call("nodeUnstageVolume", { volumeId, stagingTargetPath: staging });
    await waitUntil(() => !isRunning(helper), 20_000, () => `nbdfuse ${helper} still runs after unstage`);
    await second.host.call("nodeStageVolume", { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    for (const [name, content] of files) expect(fs.readFileSync(path.join(staging, name)).equals(content), name).toBe(true);
    await second.host.call("nodeUnstageVolume", { volumeId, stagingTargetPath: staging });
  });

  it("re-attaches an unpublished staging before serving when nbdfuse died with the plugin", async () => {
    const { volumeId, publishContext, staging } = await newVolume();
    const first = await start();
    await first.host.call("nodeStageVolume", { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    const before = await writeSyncRead(staging, "before.bin");
    const helper = nbdfusePid();
    await first.host.kill();
    process.kill(-helper, "SIGKILL"); // nbdfuse and its nbdkit, as a container restart would
    await waitUntil(() => !isRunning(helper) && processesUnder(root).length === 0, 20_000, () => "nbdfuse survived SIGKILL");

    const second = await start();
    expect(second.recovered).toEqual({ [volumeId]: "reattached" });
    expect(nbdfusePid()).not.toBe(helper);
    expect(fs.readFileSync(path.join(staging, "before.bin")).equals(before)).toBe(true);
    await writeSyncRead(staging, "after.bin");
    await second.host.call("nodeUnstageVolume", { volumeId, stagingTargetPath: staging });
  });

  it("reports a published staging whose nbdfuse died as abnormal, and reconnects it once unpublished", async () => {
    const { volumeId, publishContext, staging, target } = await newVolume();
    const first = await start();
    await first.host.call("nodeStageVolume", { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    await first.host.call("nodePublishVolume", { volumeId, publishContext, stagingTargetPath: staging, targetPath: target, volumeCapability: capability });
    const before = await writeSyncRead(target, "before.bin");
    const helper = nbdfusePid();
    await first.host.kill();
    process.kill(-helper, "SIGKILL");
    await waitUntil(() => !isRunning(helper) && processesUnder(root).length === 0, 20_000, () => "nbdfuse survived SIGKILL");

    const second = await start();
    expect(second.recovered[volumeId]).toMatch(/^error: Cannot re-attach volume .* still published at /);
    const stats = await second.host.call<{ volumeCondition: { abnormal: boolean; message: string } }>("nodeGetVolumeStats", { volumeId, volumePath: target });
    expect(stats.volumeCondition).toMatchObject({ abnormal: true, message: expect.stringMatching(/NBD link is down: nbdfuse .* is no longer running/) as string });
    const stillPublished = await second.host.call("nodeUnstageVolume", { volumeId, stagingTargetPath: staging }).catch((error: Error & { code?: number }) => error);
    expect((stillPublished as { code?: number }).code).toBe(status.FAILED_PRECONDITION);

    await second.host.call("nodeUnpublishVolume", { volumeId, targetPath: target });
    // Kubelet stages again before the next publish: now nothing holds the old device, so it is replaced.
    await second.host.call("nodeStageVolume", { volumeId, publishContext, stagingTargetPath: staging, volumeCapability: capability });
    expect(fs.readFileSync(path.join(staging, "before.bin")).equals(before)).toBe(true);
    await writeSyncRead(staging, "after.bin");
    await second.host.call("nodeUnstageVolume", { volumeId, stagingTargetPath: staging });
  });
});
