// The three NBD servers of `npm run bench:nbd`, each serving one export of the same size over a unix socket:
// esan (`esan san serve`), nbdkit's file plugin on a preallocated raw file, and qemu-nbd on a qcow2 image that
// carries an internal snapshot.

import fs from "node:fs";
import path from "node:path";

import { commandLine, ESAN_BIN, progress, runChecked } from "./nbd-common.ts";
import { ServerProcess } from "./nbd-process.ts";

/** Which server a measurement came from. */
export type ServerKey = "esan" | "nbdkit" | "qemu";

/** One running NBD server with one export the workloads read and write. */
export interface BenchServer {
  readonly key: ServerKey;
  /** Column heading in the report. */
  readonly label: string;
  /** libnbd URI of the export. */
  readonly uri: string;
  /** The server's process id, for CPU accounting (changes when qemu-nbd restarts). */
  pid(): number;
  /** Makes the next writes copy-on-write where the server can (a new snapshot); says what it did. */
  snapshot(tag: string): Promise<string>;
  /** The exact server command line(s), for the report. */
  commands(): string[];
  stop(): Promise<void>;
}

const VOLUME_GROUP = "bench";
const VOLUME = "vol";

/** Where a server keeps its files and socket. */
export interface ServerPlace {
  dir: string;
  sizeBytes: number;
  /** A file of `sizeBytes` random bytes that seeds the peers' images. */
  dataFile: string;
}

/** `unix:///abs/path`, the endpoint form `esan san serve` and `--san` take. */
function unixEndpoint(socket: string): string {
  return `unix://${socket}`;
}

/** esan: creates a SAN, serves it, and creates the bench volume through the running service (CLI `--san`). */
export async function startEsan(place: ServerPlace, options: { profileDir?: string } = {}): Promise<BenchServer> {
  const dataDir = path.join(place.dir, "san");
  const apiSocket = path.join(place.dir, "api.sock");
  const nbdSocket = path.join(place.dir, "nbd.sock");
  // Room for the volume and a full copy-on-write copy per snapshot the bench takes; the rate cap would refuse the
  // bench's back-to-back snapshots, so it is raised.
  const createArgs = ["san", "create", "--data-dir", dataDir, "--capacity", `${8 * place.sizeBytes}`, "--snapshot-rate", "1000/1m"];
  await runChecked(ESAN_BIN, createArgs);
  const env = { ...process.env };
  if (options.profileDir) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --cpu-prof --cpu-prof-dir=${options.profileDir}`.trim();
  const args = ["san", "serve", "--data-dir", dataDir, "--api", unixEndpoint(apiSocket), "--nbd", unixEndpoint(nbdSocket), "--nbd-plain-unix"];
  const server = new ServerProcess("esan san serve", ESAN_BIN, args, path.join(place.dir, "esan.log"), env);
  try {
    await server.waitForSockets([apiSocket, nbdSocket]);
    const esan = (cliArgs: string[]) => runChecked(ESAN_BIN, ["--san", unixEndpoint(apiSocket), ...cliArgs]);
    let previousSnapshot: string | undefined;
    await esan(["volume-group", "create", VOLUME_GROUP]);
    await esan(["volume", "create", `${VOLUME_GROUP}/${VOLUME}`, "--size", `${place.sizeBytes}`]);
    return {
      key: "esan",
      label: "esan",
      uri: `nbd+unix:///${VOLUME_GROUP}/${VOLUME}?socket=${nbdSocket}`,
      pid: () => server.pid,
      snapshot: async (tag) => {
        // One snapshot at a time, like the qcow2 image: the previous one goes first, which also bounds the space used.
        if (previousSnapshot) await esan(["snapshot", "delete", `${VOLUME_GROUP}/${previousSnapshot}`]);
        await esan(["snapshot", "create", `${VOLUME_GROUP}/${tag}`, "--source", `${VOLUME_GROUP}/${VOLUME}`]);
        previousSnapshot = tag;
        return `esan snapshot ${VOLUME_GROUP}/${tag} taken through the SAN API`;
      },
      commands: () => [commandLine("esan", createArgs), server.command.replace(ESAN_BIN, "esan"), `esan --san ${unixEndpoint(apiSocket)} volume create ${VOLUME_GROUP}/${VOLUME} --size ${place.sizeBytes}`],
      stop: () => server.stop(),
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** nbdkit's file plugin on a raw file that holds the data already (preallocated, every block written). */
export async function startNbdkitFile(place: ServerPlace): Promise<BenchServer> {
  const image = path.join(place.dir, "nbdkit.raw");
  const socket = path.join(place.dir, "nbdkit.sock");
  fs.copyFileSync(place.dataFile, image);
  const server = new ServerProcess("nbdkit", "nbdkit", ["-f", "-U", socket, "file", image], path.join(place.dir, "nbdkit.log"));
  try {
    await server.waitForSockets([socket]);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return {
    key: "nbdkit",
    label: "nbdkit file",
    uri: `nbd+unix:///?socket=${socket}`,
    pid: () => server.pid,
    snapshot: () => Promise.resolve("nbdkit file has no snapshots; same raw file"),
    commands: () => [`cp DATA.raw ${image}`, server.command],
    stop: () => server.stop(),
  };
}

/**
 * qemu-nbd on a qcow2 image converted from the data, with internal snapshot s1 taken after that write, so its
 * writes are copy-on-write like esan's after a snapshot. `snapshot` stops qemu-nbd (qemu-img needs the image's
 * lock), replaces the internal snapshot with a new one and serves the image again.
 */
export async function startQemuNbd(place: ServerPlace): Promise<BenchServer> {
  const image = path.join(place.dir, "qemu.qcow2");
  const socket = path.join(place.dir, "qemu.sock");
  await runChecked("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", place.dataFile, image]);
  await runChecked("qemu-img", ["snapshot", "-c", "s1", image]);
  const commands = [`qemu-img convert -f raw -O qcow2 DATA.raw ${image}`, `qemu-img snapshot -c s1 ${image}`];
  const serve = async (): Promise<ServerProcess> => {
    fs.rmSync(socket, { force: true });
    const args = ["-t", "-k", socket, "-f", "qcow2", "--cache=writeback", image];
    const server = new ServerProcess("qemu-nbd", "qemu-nbd", args, path.join(place.dir, "qemu.log"));
    if (!commands.includes(server.command)) commands.push(server.command);
    try {
      await server.waitForSockets([socket]);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  };
  let server = await serve();
  let previousSnapshot = "s1";
  return {
    key: "qemu",
    label: "qemu-nbd qcow2",
    uri: `nbd+unix:///?socket=${socket}`,
    pid: () => server.pid,
    snapshot: async (tag) => {
      await server.stop();
      await runChecked("qemu-img", ["snapshot", "-d", previousSnapshot, image]);
      await runChecked("qemu-img", ["snapshot", "-c", tag, image]);
      previousSnapshot = tag;
      server = await serve();
      progress(`qemu-nbd restarted with internal snapshot ${tag} (pid ${server.pid})`);
      return `qcow2 internal snapshot ${tag} (qemu-nbd restarted)`;
    },
    commands: () => [...commands, `qemu-img snapshot -d PREVIOUS ${image}`, `qemu-img snapshot -c TAG ${image}`],
    stop: () => server.stop(),
  };
}
