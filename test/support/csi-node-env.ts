// What the CSI node tests stand on: a real `esan san serve` (NBD over TLS-PSK only, no plain unix clients), a
// SanClient to create volumes and attach them (a real credential, as ControllerPublishVolume would issue), a logger
// whose lines the test can read, and a sweep that removes every mount, loop device, FUSE mount and helper process
// left under a test's directory, so a failing test leaves nothing behind.
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import { encodePublishContext, nbdUriFor } from "../../src/csi/publish-context.ts";
import { GrpcSanClient } from "../../src/san/grpc-san-client.ts";
import { ChildServer, runCommand, runOk } from "./block-process.ts";
import { loopsUnder, mountsUnder, nbdProcessesUnder as processesUnder } from "../../src/cluster/node-cleanup.ts";

const ESAN = path.resolve(import.meta.dirname, "..", "..", "bin", "esan");
export const MiB = 1024 * 1024;

/** Tools the node service runs (Debian: libnbd-bin, nbdkit, fuse3, util-linux, mount, e2fsprogs, xfsprogs, coreutils). */
const NODE_TOOLS = ["nbdfuse", "nbdkit", "nbdinfo", "fusermount3", "losetup", "blkid", "mkfs.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs", "fsfreeze", "mount", "umount", "dd"];

/** What this machine lacks for the node tests, one phrase each; empty when everything is there. */
export async function missingNodePrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push(`root (running as uid ${process.getuid?.()})`);
  if (!fs.existsSync("/dev/fuse")) missing.push("/dev/fuse (FUSE)");
  if (!fs.existsSync("/dev/loop-control")) missing.push("/dev/loop-control (loop devices)");
  for (const tool of NODE_TOOLS) {
    if ((await runCommand("sh", ["-c", `command -v ${tool}`])).code !== 0) missing.push(`the ${tool} command`);
  }
  return missing;
}

/**
 * Fails the calling suite when a prerequisite is missing. Never a skip: CI installs every prerequisite through
 * scripts/setup, so a missing one is a broken setup that must show as failures.
 */
export function requirePrerequisites(missing: readonly string[], what: string): void {
  if (missing.length > 0) throw new Error(`${what} need ${missing.join(", ")}: run them as root after bash scripts/setup.`);
}

/** A fresh directory for one test file under /dev/shm (short paths: unix sockets live in it). */
export function makeRoot(prefix: string): string {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : "/tmp";
  return fs.mkdtempSync(path.join(base, `${prefix}-`));
}

/** A running SAN with a volume group `vg`, reached over its API socket. */
export interface TestSan {
  client: GrpcSanClient;
  server: ChildServer;
  nbdSocket: string;
  /** Creates vg/NAME of `sizeBytes` and returns its id. */
  createVolume(name: string, sizeBytes: number): Promise<string>;
  /** Attaches a volume to `nodeId` and returns the publish_context ControllerPublishVolume would return. */
  publishContext(volumeId: string, nodeId: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/** `esan san create` + `esan san serve` under `root`. */
export async function startSan(root: string): Promise<TestSan> {
  const dataDir = path.join(root, "san");
  const apiSocket = path.join(root, "api.sock");
  const nbdSocket = path.join(root, "nbd.sock");
  await runOk(ESAN, ["san", "create", "--data-dir", dataDir, "--capacity", "4GiB"]);
  const server = new ChildServer("esan san serve", ESAN, ["san", "serve", "--data-dir", dataDir, "--api", `unix://${apiSocket}`, "--nbd", `unix://${nbdSocket}`]);
  await server.waitForSocket(apiSocket);
  await server.waitForSocket(nbdSocket);
  const client = GrpcSanClient.connect(`unix://${apiSocket}`);
  await client.createVolumeGroup("vg");
  return {
    client,
    server,
    nbdSocket,
    createVolume: async (name, sizeBytes) => (await client.createVolume({ volumeGroup: "vg", name, sizeBytes })).id,
    publishContext: async (volumeId, nodeId) => {
      const credential = await client.attach(volumeId, nodeId);
      return encodePublishContext({
        nbdAddress: credential.nbdAddress,
        nbdUri: nbdUriFor(credential.nbdAddress, credential.exportName, credential.pskIdentity),
        exportName: credential.exportName,
        pskIdentity: credential.pskIdentity,
        pskKey: credential.pskKey,
      });
    },
    stop: async () => {
      await client.close();
      await server.stop();
    },
  };
}

/** A pino logger writing JSON lines into `lines`, so a test can read what was logged. */
export function capturingLogger(lines: string[]): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return pino({ level: "debug" }, sink);
}

// The same sweep primitives the local cluster uses to leave nothing behind.
export { loopsUnder, mountsUnder, processesUnder };

/**
 * Removes everything a node test left under `root`: mounts (publications and stagings, then FUSE), loop devices and
 * nbdfuse/nbdkit processes. Returns one phrase per thing it had to remove, so a test can assert it found nothing.
 */
export async function sweep(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of mountsUnder(root).filter((e) => !e.fsType.startsWith("fuse"))) {
    found.push(`mount ${entry.mountPoint}`);
    if ((await runCommand("umount", [entry.mountPoint])).code !== 0) await runCommand("umount", ["-l", entry.mountPoint]);
  }
  for (const device of loopsUnder(root)) {
    found.push(`loop device ${device}`);
    await runCommand("losetup", ["-d", device]);
  }
  for (const entry of mountsUnder(root)) {
    found.push(`FUSE mount ${entry.mountPoint}`);
    if ((await runCommand("fusermount3", ["-u", entry.mountPoint])).code !== 0) await runCommand("fusermount3", ["-u", "-z", entry.mountPoint]);
  }
  for (const pid of processesUnder(root)) {
    found.push(`process ${pid}`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
