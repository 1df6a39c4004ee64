// Attach and detach through a running service: credentials survive a restart, a credential opens exactly its volume
// on the NBD endpoint (checked with libnbd's own clients when installed), and detach cuts a live connection.
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshSan, killServers, MiB, run, runJson, serve, type Served } from "./support.ts";

/** The attach command's --json output. */
interface Credential {
  volumeId: string;
  nodeId: string;
  pskIdentity: string;
  pskKey: string;
  nbdAddress: string;
  exportName: string;
}

/** libnbd's tools, with /usr/bin first so nbdsh finds its Python module (PEERS.md). */
const LIBNBD_ENV = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ""}` };

/** An nbds+unix URI for a credential, with its PSK file written next to the data directory. */
function tlsUri(credential: Credential, root: string, exportName = credential.exportName): string {
  const keys = path.join(root, `${credential.pskIdentity}.psk`);
  fs.writeFileSync(keys, `${credential.pskIdentity}:${credential.pskKey}\n`, { mode: 0o600 });
  const socket = credential.nbdAddress.slice("unix://".length);
  return `nbds+unix://${credential.pskIdentity}@/${encodeURIComponent(exportName)}?socket=${socket}&tls-psk-file=${keys}`;
}

function nbdinfo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("nbdinfo", args, { env: LIBNBD_ENV, timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("attach and detach through esan san serve", () => {
  let san: Awaited<ReturnType<typeof freshSan>>;
  let server: Served;
  let credential: Credential;

  beforeAll(async () => {
    // Never a skip: scripts/setup installs libnbd-bin and python3-libnbd.
    if (!fs.existsSync("/usr/bin/nbdinfo") || !fs.existsSync("/usr/bin/nbdsh")) throw new Error("These tests need nbdinfo and nbdsh: run bash scripts/setup.");
    san = await freshSan();
    server = await serve(san.dataDir, ["--nbd-plain-unix"]);
    for (const args of [["volume-group", "create", "vg1"], ["volume", "create", "vg1/a", "--size", "4MiB"], ["volume", "create", "vg1/b", "--size", "2MiB"]]) {
      await runJson([...args, "--san", server.api]);
    }
    const written = await run(["volume", "write", "vg1/a", "--san", server.api], { input: Buffer.alloc(MiB, 0x5a) });
    expect(written.code, written.stderr).toBe(0);
    await runJson(["snapshot", "create", "vg1/snap", "--source", "vg1/a", "--san", server.api]);
    credential = await runJson<Credential>(["volume", "attach", "vg1/a", "--node", "worker-1", "--san", server.api]);
  });

  afterAll(async () => {
    await killServers();
    san.cleanup();
  });

  it("hands out the service's NBD address and the volume id as the export name", () => {
    expect(credential).toMatchObject({ volumeId: "vg1/a", nodeId: "worker-1", exportName: "vg1/a", nbdAddress: server.endpoints.nbd[0] });
    expect(credential.pskIdentity).toMatch(/^esan-worker-1-[0-9a-f]{16}$/);
  });

  it("keeps attachments across a restart: the same credential comes back", async () => {
    expect(await server.stop()).toBe(0);
    server = await serve(san.dataDir, ["--nbd-plain-unix"]);
    expect(await runJson(["volume", "attach", "vg1/a", "--node", "worker-1", "--san", server.api])).toEqual(credential);
    const listed = await runJson<Array<{ pskIdentity: string }>>(["volume", "attachments", "--san", server.api]);
    expect(listed).toEqual([{ volumeId: "vg1/a", nodeId: "worker-1", pskIdentity: credential.pskIdentity, createdAt: expect.any(String) as string }]);
  });

  it("opens exactly the attached volume with the credential, and lists only it", async () => {
    const opened = await nbdinfo(["--json", tlsUri(credential, san.root)]);
    expect(opened.code, opened.stderr).toBe(0);
    expect(JSON.parse(opened.stdout)).toMatchObject({ exports: [{ "export-name": "vg1/a", "export-size": 4 * MiB }] });

    const listed = await nbdinfo(["--list", "--json", tlsUri(credential, san.root, "")]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { exports: Array<{ "export-name": string }> }).exports.map((e) => e["export-name"])).toEqual(["vg1/a"]);

    const other = await nbdinfo(["--json", tlsUri(credential, san.root, "vg1/b")]);
    expect(other.code).not.toBe(0);
    const wrongKey = await nbdinfo(["--json", tlsUri({ ...credential, pskKey: "00".repeat(32) }, san.root)]);
    expect(wrongKey.code).not.toBe(0);
  });

  it("shows plain unix clients every volume and the snapshot with --nbd-plain-unix", async () => {
    const socket = server.endpoints.nbd[0]!.slice("unix://".length);
    const listed = await nbdinfo(["--list", "--json", `nbd+unix:///?socket=${socket}`]);
    expect(listed.code, listed.stderr).toBe(0);
    const names = (JSON.parse(listed.stdout) as { exports: Array<{ "export-name": string }> }).exports.map((e) => e["export-name"]);
    expect(names).toEqual(["vg1/a", "vg1/b", "vg1/snap"]);
  });

  it("cuts a live connection on detach and refuses the credential afterwards", async () => {
    const script = [
      "import sys",
      "h = nbd.NBD()",
      "h.set_uri_allow_local_file(True)",
      `h.connect_uri(${JSON.stringify(tlsUri(credential, san.root))})`,
      "print('connected', h.pread(512, 0)[0], flush=True)",
      "sys.stdin.readline()",
      "h.pread(512, 0)",
      "print('read after detach', flush=True)",
    ].join("\n");
    const client = spawn("nbdsh", ["-n", "-c", script], { env: LIBNBD_ENV, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    let errors = "";
    client.stdout.setEncoding("utf8").on("data", (text: string) => (output += text));
    client.stderr.setEncoding("utf8").on("data", (text: string) => (errors += text));
    const exited = new Promise<number>((resolve) => client.once("exit", (code) => resolve(code ?? -1)));
    try {
      await new Promise<void>((resolve, reject) => {
        client.stdout.on("data", () => output.includes("connected") && resolve());
        void exited.then((code) => reject(new Error(`nbdsh exited (${code}) before connecting: ${errors}`)));
      });
      expect(await runJson(["volume", "detach", "vg1/a", "--node", "worker-1", "--san", server.api])).toEqual({
        volumeId: "vg1/a",
        nodeId: "worker-1",
        detached: true,
      });
      expect(output).toContain("connected 90");
      client.stdin.end("go\n");
      expect(await exited).not.toBe(0);
      expect(output).not.toContain("read after detach");
    } finally {
      client.kill("SIGKILL");
    }
    const refused = await nbdinfo(["--json", tlsUri(credential, san.root)]);
    expect(refused.code).not.toBe(0);
  });
});
