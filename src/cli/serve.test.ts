// Tests of `san serve`'s flag handling: default sockets, one listener per kind, credential files and the ready line.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../storage/errors.ts";
import { formatReady, listeners, serveConfig, type ServeFlags } from "./serve.ts";

const flags = (extra: Partial<ServeFlags> = {}): ServeFlags => ({ api: [], nbd: [], shutdownTimeout: "30s", logLevel: "info", ...extra });

describe("listeners", () => {
  it.each([
    { values: [], expected: [{ kind: "unix", path: "/d/api.sock" }] },
    { values: ["tcp://127.0.0.1:0"], expected: [{ kind: "unix", path: "/d/api.sock" }, { kind: "tcp", host: "127.0.0.1", port: 0 }] },
    { values: ["unix:///run/a.sock"], expected: [{ kind: "unix", path: "/run/a.sock" }] },
  ])("turns $values into listeners, always with a unix socket", ({ values, expected }) => {
    expect(listeners(values, "--api", "/d/api.sock")).toEqual(expected);
  });

  it("refuses two listeners of one kind", () => {
    expect(() => listeners(["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"], "--nbd", "/d/nbd.sock")).toThrow(/more than once for TCP/);
  });
});

describe("serveConfig", () => {
  let dir = "";

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "esan-serve-flags-"));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("defaults both sockets into the data directory, resolved to an absolute path", () => {
    const config = serveConfig("relative/san", flags());
    const root = path.resolve("relative/san");
    expect(config).toMatchObject({
      dataDir: root,
      api: [{ kind: "unix", path: `${root}/api.sock` }],
      nbd: [{ kind: "unix", path: `${root}/nbd.sock` }],
      nbdPlainUnix: false,
      shutdownTimeoutMs: 30_000,
    });
    expect(config.apiToken).toBeUndefined();
  });

  it("reads the token file and the TLS directory, and normalizes --nbd-advertise", () => {
    fs.writeFileSync(path.join(dir, "token"), "  secret-token\n");
    fs.mkdirSync(path.join(dir, "tls"));
    for (const name of ["tls.crt", "tls.key", "ca.crt"]) fs.writeFileSync(path.join(dir, "tls", name), name);
    const config = serveConfig(dir, flags({ apiTokenFile: path.join(dir, "token"), apiTlsDir: path.join(dir, "tls"), nbdAdvertise: "tcp://[::1]:10809" }));
    expect(config.apiToken).toBe("secret-token");
    expect(config.apiTls).toEqual({ certChain: Buffer.from("tls.crt"), privateKey: Buffer.from("tls.key"), clientCa: Buffer.from("ca.crt") });
    expect(config.nbdAdvertise).toBe("tcp://[::1]:10809");
  });

  it.each([
    { name: "a missing token file", extra: { apiTokenFile: "/nonexistent/token" }, text: "Cannot read --api-token-file /nonexistent/token: no such file or directory." },
    { name: "a TLS directory without a key", extra: { apiTlsDir: "/nonexistent" }, text: "it needs tls.crt and tls.key together" },
    { name: "a bad duration", extra: { shutdownTimeout: "soon" }, text: "--shutdown-timeout" },
  ])("refuses $name with a sentence", ({ extra, text }) => {
    expect(() => serveConfig(dir, flags(extra))).toThrow(InvalidArgumentError);
    expect(() => serveConfig(dir, flags(extra))).toThrow(text);
  });

  it("refuses an empty token file", () => {
    fs.writeFileSync(path.join(dir, "empty"), "\n");
    expect(() => serveConfig(dir, flags({ apiTokenFile: path.join(dir, "empty") }))).toThrow("the file is empty");
  });
});

describe("formatReady", () => {
  it("names every endpoint on one line", () => {
    const line = formatReady({ dataDir: "/d", pid: 7, api: ["unix:///d/api.sock", "tcp://127.0.0.1:9"], nbd: ["unix:///d/nbd.sock"] });
    expect(line).toBe("esan san serving /d (pid 7): api unix:///d/api.sock, tcp://127.0.0.1:9; nbd unix:///d/nbd.sock");
  });
});
