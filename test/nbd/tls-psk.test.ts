// STARTTLS with TLS-PSK: libnbd and qemu over unix and TCP, wrong and unknown keys, cross-export refusal,
// TLS-required listeners, TLS 1.2 and 1.3, dropping an identity's connections, and keys kept out of the logs.
import crypto from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { NBD_CMD_READ, NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_LIST, NBD_REP_ERR_POLICY, NBD_REP_ERR_TLS_REQD, NBD_REP_SERVER } from "../../src/nbd/constants.ts";
import type { NbdLogger } from "../../src/nbd/logger.ts";
import { nbdsh, requireClients, runClient, runClientOk } from "../support/nbd-clients.ts";
import { goPayload, RawNbdClient } from "../support/nbd-raw-client.ts";
import { type NbdFixture, startNbdFixture, writePskFile } from "../support/nbd-server.ts";

const MiB = 1024 * 1024;
const aliceKey = crypto.randomBytes(32);
const bobKey = crypto.randomBytes(32);
const logLines: string[] = [];
const capture = (level: string) => (fields: Record<string, unknown>, message: string) => logLines.push(`${level} ${message} ${JSON.stringify(fields)}`);
const logger: NbdLogger = { debug: capture("debug"), info: capture("info"), warn: capture("warn"), error: capture("error") };
let f: NbdFixture;
let alicePsk: string;
let alicePskDir: string;
let wrongPsk: string;

beforeAll(async () => {
  requireClients(["nbdinfo", "nbdsh", "qemu-img", "qemu-io"]);
  f = await startNbdFixture({
    tls: "required",
    tcp: true,
    logger,
    provider: { plainUnix: false, grants: { alice: { key: aliceKey, exports: ["vg/a"] }, bob: { key: bobKey, exports: ["vg/b"] } } },
  });
  f.san.createVolume({ volumeGroup: "vg", name: "a", sizeBytes: 16 * MiB });
  f.san.createVolume({ volumeGroup: "vg", name: "b", sizeBytes: 16 * MiB });
  f.san.write("vg/a", 0, Buffer.alloc(4096, 0xa1));
  f.san.write("vg/b", 0, Buffer.alloc(4096, 0xb1));
  alicePskDir = path.join(f.nbd.dir, "alice");
  alicePsk = writePskFile(alicePskDir, "alice", aliceKey);
  wrongPsk = writePskFile(path.join(f.nbd.dir, "wrong"), "alice", crypto.randomBytes(32));
});

afterAll(async () => {
  await f.teardown();
});

const tcpUri = (identity: string, pskFile: string, exportName: string): string =>
  `nbds://${identity}@127.0.0.1:${f.nbd.tcpPort}/${encodeURIComponent(exportName)}?tls-psk-file=${pskFile}`;

test("libnbd over the unix socket: PSK session reads and writes its export", async () => {
  const result = await nbdsh(f.nbd.uri("vg/a", { identity: "alice", pskFile: alicePsk }), `h.pwrite(b"\\x42" * 4096, 8192, nbd.CMD_FLAG_FUA)
print(h.get_tls_negotiated(), bytes(h.pread(512, 0)[:4]).hex(), bytes(h.pread(512, 8192)[:4]).hex())`);
  expect(result.stderr).toBe("");
  expect(result.stdout.trim()).toBe("True a1a1a1a1 42424242");
  expect(logLines.some((l) => l.includes("TLS session established") && l.includes('"tlsProtocol":"TLSv1.3"'))).toBe(true);
});

test("libnbd over TCP: nbdinfo and nbdsh with TLS-PSK", async () => {
  const { stdout } = await runClientOk("nbdinfo", [tcpUri("alice", alicePsk, "vg/a")]);
  expect(stdout).toContain("with TLS");
  const result = await nbdsh(tcpUri("alice", alicePsk, "vg/a"), `print(bytes(h.pread(512, 8192)[:4]).hex())`);
  expect(result.stdout.trim()).toBe("42424242");
});

test("qemu-io with tls-creds-psk over unix and TCP writes and reads patterns", async () => {
  const creds = `tls-creds-psk,id=tls0,endpoint=client,dir=${alicePskDir},username=alice`;
  const unix = await runClientOk("qemu-io", ["--object", creds, "--image-opts", "-c", "write -P 0x5e 1M 64k", "-c", "read -P 0x5e 1M 64k",
    `driver=nbd,path=${f.nbd.socketPath},export=vg/a,tls-creds=tls0`]);
  expect(unix.stdout).toContain("read 65536/65536 bytes");
  const tcp = await runClientOk("qemu-io", ["--object", creds, "--image-opts", "-c", "read -P 0x5e 1M 64k", "-c", "write -z 1M 64k", "-c", "read -P 0 1M 64k",
    `driver=nbd,host=127.0.0.1,port=${f.nbd.tcpPort},export=vg/a,tls-creds=tls0`]);
  expect(tcp.stdout).toContain("read 65536/65536 bytes");
  expect(`${tcp.stdout}${tcp.stderr}`).not.toMatch(/fail|error/i);
});

test("a wrong key fails the TLS handshake: no export details, no data", async () => {
  for (const uri of [f.nbd.uri("vg/a", { identity: "alice", pskFile: wrongPsk }), tcpUri("alice", wrongPsk, "vg/a")]) {
    const result = await runClient("nbdinfo", [uri]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain("export-size");
    expect(result.stderr).toMatch(/TLS|handshake|decrypt|MAC/i);
  }
  const qemu = await runClient("qemu-img", ["info", "--object", `tls-creds-psk,id=tls0,endpoint=client,dir=${path.dirname(wrongPsk)},username=alice`,
    "--image-opts", `driver=nbd,path=${f.nbd.socketPath},export=vg/a,tls-creds=tls0`]);
  expect(qemu.code).not.toBe(0);
  expect(qemu.stdout).not.toContain("virtual size");
});

test("an unknown identity fails the TLS handshake", async () => {
  const mallory = writePskFile(path.join(f.nbd.dir, "mallory"), "mallory", crypto.randomBytes(32));
  const result = await runClient("nbdinfo", [f.nbd.uri("vg/a", { identity: "mallory", pskFile: mallory })]);
  expect(result.code).not.toBe(0);
  expect(result.stdout).not.toContain("export-size");
});

test("an identity granted vg/a asking for vg/b gets an error reply and no data; its list shows only vg/a", async () => {
  const refused = await runClient("nbdinfo", [f.nbd.uri("vg/b", { identity: "alice", pskFile: alicePsk })]);
  expect(refused.code).not.toBe(0);
  expect(refused.stdout).not.toContain("export-size");
  // libnbd 1.14 words NBD_REP_ERR_POLICY as "Operation not supported"; the raw reply is checked below.
  expect(refused.stderr).toMatch(/for export: vg\/b/);
  const raw = await RawNbdClient.connect(f.nbd.socketPath);
  await raw.greet();
  await raw.startTls("alice", aliceKey);
  const replies = await raw.option(NBD_OPT_GO, goPayload("vg/b"));
  expect(replies).toHaveLength(1);
  expect(replies[0]!.type).toBe(NBD_REP_ERR_POLICY);
  expect(replies[0]!.data.toString()).toBe("Export vg/b is not allowed for this client.");
  raw.destroy();
  const qemu = await runClient("qemu-io", ["--object", `tls-creds-psk,id=tls0,endpoint=client,dir=${alicePskDir},username=alice`, "--image-opts",
    "-c", "read -P 0xb1 0 4k", `driver=nbd,path=${f.nbd.socketPath},export=vg/b,tls-creds=tls0`]);
  expect(qemu.code).not.toBe(0);
  expect(qemu.stdout).not.toContain("read 4096/4096");
  const list = await runClientOk("nbdinfo", ["--list", "--json", f.nbd.uri("", { identity: "alice", pskFile: alicePsk })]);
  expect((JSON.parse(list.stdout) as { exports: { "export-name": string }[] }).exports.map((e) => e["export-name"])).toEqual(["vg/a"]);
});

test("plain clients are refused with TLS_REQD on TCP and on a TLS-required unix socket", async () => {
  for (const uri of [`nbd://127.0.0.1:${f.nbd.tcpPort}/vg%2Fa`, f.nbd.uri("vg/a")]) {
    const result = await runClient("nbdinfo", [uri]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain("export-size");
  }
  const raw = await RawNbdClient.connect({ port: f.nbd.tcpPort! });
  await raw.greet();
  for (const option of [NBD_OPT_LIST, NBD_OPT_GO]) {
    const [reply] = await raw.option(option, option === NBD_OPT_GO ? goPayload("vg/a") : undefined);
    expect(reply!.type).toBe(NBD_REP_ERR_TLS_REQD);
  }
  raw.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from("vg/a"));
  await raw.waitClosed();
});

test("TLS 1.2 (PSK suites) and TLS 1.3 both work for a client that offers them", async () => {
  for (const maxVersion of ["TLSv1.2", "TLSv1.3"] as const) {
    const raw = await RawNbdClient.connect({ port: f.nbd.tcpPort! });
    await raw.greet();
    expect(await raw.startTls("bob", bobKey, { maxVersion })).toBe(maxVersion);
    await raw.negotiate("vg/b");
    raw.request({ type: NBD_CMD_READ, length: 4096, handle: 7n });
    const reply = await raw.readAnyReply();
    expect(reply.kind === "chunk" && reply.payload.subarray(8, 12).toString("hex")).toBe("b1b1b1b1");
    raw.destroy();
  }
});

test("dropConnections hangs up every session of one identity and leaves the others", async () => {
  const alice = await RawNbdClient.connect(f.nbd.socketPath);
  await alice.greet();
  await alice.startTls("alice", aliceKey);
  await alice.negotiate("vg/a");
  const bob = await RawNbdClient.connect({ port: f.nbd.tcpPort! });
  await bob.greet();
  await bob.startTls("bob", bobKey);
  await bob.negotiate("vg/b");
  expect(f.nbd.server.dropConnections("alice")).toBe(1);
  await alice.waitClosed();
  bob.request({ type: NBD_CMD_READ, length: 512, handle: 9n });
  expect(RawNbdClient.errnoOf(await bob.readAnyReply())).toBe(0);
  bob.destroy();
});

test("a revoked identity can no longer connect", async () => {
  const carolKey = crypto.randomBytes(32);
  f.provider.grant("carol", { key: carolKey, exports: ["vg/a"] });
  const carolPsk = writePskFile(path.join(f.nbd.dir, "carol"), "carol", carolKey);
  await runClientOk("nbdinfo", ["--size", f.nbd.uri("vg/a", { identity: "carol", pskFile: carolPsk })]);
  f.provider.revoke("carol");
  const result = await runClient("nbdinfo", ["--size", f.nbd.uri("vg/a", { identity: "carol", pskFile: carolPsk })]);
  expect(result.code).not.toBe(0);
});

test("LIST over TLS shows what the identity may see", async () => {
  const raw = await RawNbdClient.connect(f.nbd.socketPath);
  await raw.greet();
  await raw.startTls("bob", bobKey);
  const replies = await raw.option(NBD_OPT_LIST);
  expect(replies.filter((r) => r.type === NBD_REP_SERVER).map((r) => r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString())).toEqual(["vg/b"]);
  raw.destroy();
});

// Runs last: everything the server logged (at debug level) during the sessions above, good keys and bad.
test("the server's log of all these PSK sessions holds no key material", () => {
  const logged = logLines.join("\n");
  expect(logged).toMatch(/TLS session established.*pskIdentity":"alice"/);
  expect(logged).toMatch(/TLS session failed/);
  for (const key of [aliceKey, bobKey]) {
    expect(logged).not.toContain(key.toString("hex"));
    expect(logged).not.toContain(key.toString("hex").toUpperCase());
    expect(logged).not.toContain(key.toString("base64"));
  }
});
