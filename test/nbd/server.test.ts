// NbdServer lifecycle: listeners (unix and 127.0.0.1 port 0), configuration errors, and a clean close.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, test } from "vitest";
import { NbdConfigError } from "../../src/nbd/config-error.ts";
import { NBD_CMD_READ, NBD_OPT_STARTTLS, NBD_REP_ACK } from "../../src/nbd/constants.ts";
import { NbdServer } from "../../src/nbd/server.ts";
import { SanTestProvider } from "../support/nbd-provider.ts";
import { RawNbdClient } from "../support/nbd-raw-client.ts";
import { createTestSan, type TestSan } from "../support/nbd-server.ts";

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setup(): { testSan: TestSan; provider: SanTestProvider; dir: string } {
  const testSan = createTestSan();
  cleanups.push(testSan.cleanup);
  testSan.san.createVolume({ volumeGroup: "vg", name: "v", sizeBytes: 1024 * 1024 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "esan-nbd-server-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { testSan, provider: new SanTestProvider(testSan.san), dir };
}

test("listens on a unix socket (mode 0600) and on 127.0.0.1 port 0, reporting the chosen port", async () => {
  const { provider, dir } = setup();
  const socketPath = path.join(dir, "nbd.sock");
  const server = new NbdServer({ provider, listen: [`unix://${socketPath}`, "tcp://127.0.0.1:0"], tls: "optional" });
  cleanups.push(() => server.close());
  const addresses = await server.listen();
  expect(addresses[0]).toBe(`unix://${socketPath}`);
  expect(addresses[1]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
  expect(Number(addresses[1]!.split(":").pop())).toBeGreaterThan(0);
  expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
  const tcp = await RawNbdClient.connect({ port: Number(addresses[1]!.split(":").pop()) });
  await tcp.greet();
  expect((await tcp.option(NBD_OPT_STARTTLS))[0]!.type).toBe(NBD_REP_ACK);
  tcp.destroy();
});

test("close() stops listening, drops live connections and resolves", async () => {
  const { provider, dir } = setup();
  const socketPath = path.join(dir, "nbd.sock");
  const server = new NbdServer({ provider, listen: [`unix://${socketPath}`], tls: "optional" });
  await server.listen();
  const inTransmission = await RawNbdClient.connect(socketPath);
  await inTransmission.greet();
  await inTransmission.negotiate("vg/v");
  inTransmission.request({ type: NBD_CMD_READ, length: 512 });
  expect(RawNbdClient.errnoOf(await inTransmission.readAnyReply())).toBe(0);
  const inHandshake = await RawNbdClient.connect(socketPath);
  await inHandshake.greet();
  expect(server.connectionCount).toBe(2);
  await server.close();
  await inTransmission.waitClosed();
  await inHandshake.waitClosed();
  expect(server.connectionCount).toBe(0);
  expect(provider.openBackends).toBe(0);
  await expect(RawNbdClient.connect(socketPath)).rejects.toThrow();
  await server.close();
});

test("refuses TCP without TLS, bad addresses, and a path that is not a socket", async () => {
  const { provider, dir } = setup();
  expect(() => new NbdServer({ provider, listen: ["tcp://127.0.0.1:0"], tls: "off" })).toThrow(NbdConfigError);
  expect(() => new NbdServer({ provider, listen: ["unix://relative"] })).toThrow(NbdConfigError);
  expect(() => new NbdServer({ provider, listen: [] })).toThrow(NbdConfigError);
  const file = path.join(dir, "regular-file");
  fs.writeFileSync(file, "keep me");
  const server = new NbdServer({ provider, listen: [`unix://${file}`] });
  await expect(server.listen()).rejects.toThrow(/Cannot listen on unix:/);
  expect(fs.readFileSync(file, "utf8")).toBe("keep me");
});

test("a socket file left by a previous run is replaced", async () => {
  const { provider, dir } = setup();
  const socketPath = path.join(dir, "stale.sock");
  // A process that bound the socket and died leaves the file behind with nobody listening.
  execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socketPath]);
  expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
  const server = new NbdServer({ provider, listen: [`unix://${socketPath}`], tls: "optional" });
  cleanups.push(() => server.close());
  await server.listen();
  const client = await RawNbdClient.connect(socketPath);
  await client.greet();
  await client.negotiate("vg/v");
  client.destroy();
});

test("dropExportConnections hangs up the connections of one export only", async () => {
  const { provider, dir, testSan } = setup();
  testSan.san.createVolume({ volumeGroup: "vg", name: "w", sizeBytes: 1024 * 1024 });
  const socketPath = path.join(dir, "nbd.sock");
  const server = new NbdServer({ provider, listen: [`unix://${socketPath}`], tls: "optional" });
  cleanups.push(() => server.close());
  await server.listen();
  const clients = await Promise.all(["vg/v", "vg/v", "vg/w"].map(async (name) => {
    const client = await RawNbdClient.connect(socketPath);
    await client.greet();
    await client.negotiate(name);
    return client;
  }));
  const handshaking = await RawNbdClient.connect(socketPath);
  await handshaking.greet();
  expect(server.dropExportConnections("vg/v")).toBe(2);
  await clients[0]!.waitClosed();
  await clients[1]!.waitClosed();
  clients[2]!.request({ type: NBD_CMD_READ, length: 512 });
  expect(RawNbdClient.errnoOf(await clients[2]!.readAnyReply())).toBe(0);
  expect(handshaking.ended).toBe(false);
  for (const client of [...clients, handshaking]) client.destroy();
});
