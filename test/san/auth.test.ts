// Authentication of the SAN API over TCP (loopback only): no credentials or a wrong bearer token get UNAUTHENTICATED,
// the right token or a client certificate signed by the service's CA get through, and no secret reaches the log.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SanApiError } from "../../src/san/errors.ts";
import { GrpcSanClient } from "../../src/san/grpc-san-client.ts";
import { sanServiceClient } from "../../src/san/proto.ts";
import { ERROR_CODE_KEY } from "../../src/san/status.ts";
import { InvalidArgumentError } from "../../src/storage/errors.ts";
import { expectError, freshSan, killServers, run, runJson, secretFile, serve, type Served } from "./support.ts";

const TOKEN = "esan-test-token-5f0c2b9e8d7a6c5b4a3f2e1d0c9b8a7f";

/** One call the way any gRPC client makes it, knowing only the .proto: resolves with the failure status. */
function rawCall(address: string, method: string, request: Record<string, unknown>, token?: string): Promise<ServiceError> {
  const Service = sanServiceClient();
  const client = new Service(address.replace("tcp://", ""), credentials.createInsecure());
  const metadata = new Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  const definition = Service.service[method]!;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, metadata, (err) => {
      client.close();
      if (err) resolve(err);
      else reject(new Error(`${method} succeeded`));
    });
  });
}

describe("SAN API over TCP with a bearer token", () => {
  let san: Awaited<ReturnType<typeof freshSan>>;
  let server: Served;
  let tcp = "";
  let tokenFile = "";
  let wrongFile = "";

  beforeAll(async () => {
    san = await freshSan();
    tokenFile = secretFile(san.root, "token", `${TOKEN}\n`);
    wrongFile = secretFile(san.root, "wrong", "not-the-token\n");
    server = await serve(san.dataDir, ["--api", "tcp://127.0.0.1:0", "--api-token-file", tokenFile, "--log-level", "debug"]);
    tcp = server.endpoints.api.find((a) => a.startsWith("tcp://")) ?? "";
  });

  afterAll(async () => {
    await killServers();
    san.cleanup();
  });

  it("prints the port the kernel chose", () => {
    expect(tcp).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
  });

  it("refuses an anonymous call and a wrong token as Unauthenticated, and serves the right token", async () => {
    const anonymous = expectError(await run(["volume-group", "list", "--san", tcp]), "Unauthenticated");
    expect(anonymous).toContain("needs credentials");
    const wrong = expectError(await run(["volume-group", "list", "--san", tcp, "--san-token-file", wrongFile]), "Unauthenticated");
    expect(wrong).toContain("refused the bearer token");
    expect(await runJson(["volume-group", "create", "vg1", "--san", tcp, "--san-token-file", tokenFile])).toMatchObject({ name: "vg1" });
  });

  it("gives generic gRPC clients UNAUTHENTICATED, and typed refusals as status code, sentence and esan code", async () => {
    const anonymous = GrpcSanClient.connect(tcp);
    const authorized = GrpcSanClient.connect(tcp, { token: TOKEN });
    try {
      const refused = await anonymous.info().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SanApiError);
      expect((await rawCall(tcp, "GetSanInfo", {})).code).toBe(status.UNAUTHENTICATED);
      expect((await rawCall(tcp, "GetSanInfo", {}, "wrong")).code).toBe(status.UNAUTHENTICATED);

      const bad = await authorized.createVolume({ volumeGroup: "vg1", name: "Bad_Name", sizeBytes: 1 << 20 }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(InvalidArgumentError);
      expect((bad as Error).message).toBe("The volume name 'Bad_Name' is not allowed: use only a-z, 0-9 and '-', starting and ending with a letter or digit.");
      // What a client that knows nothing of esan sees: the raw status.
      const raw = await rawCall(tcp, "GetVolume", { id: "vg1/missing" }, TOKEN);
      expect(raw.code).toBe(status.NOT_FOUND);
      expect(raw.details).toBe("No volume vg1/missing exists.");
      expect(raw.metadata.get(ERROR_CODE_KEY)).toEqual(["NotFound"]);
      expect(raw.details).not.toMatch(/\s+at\s/);
      // A size beyond 2^53, which only a hand-made client can send, is refused rather than rounded.
      const huge = await rawCall(tcp, "Read", { imageId: "vg1/missing", offset: "1152921504606846977", length: 1 }, TOKEN);
      expect(huge.code).toBe(status.INVALID_ARGUMENT);
      expect(huge.metadata.get(ERROR_CODE_KEY)).toEqual(["InvalidArgument"]);
      expect(huge.details).toContain("offset must be a whole number");
    } finally {
      await Promise.all([anonymous.close(), authorized.close()]);
    }
  });

  it("never writes the bearer token or a PSK key to its log", async () => {
    await runJson(["volume", "create", "vg1/a", "--size", "1MiB", "--san", tcp, "--san-token-file", tokenFile]);
    const credential = await runJson<{ pskKey: string; pskIdentity: string }>(["volume", "attach", "vg1/a", "--node", "n1", "--san", tcp, "--san-token-file", tokenFile]);
    expect(credential.pskKey).toMatch(/^[0-9a-f]{64}$/);
    await runJson(["volume", "detach", "vg1/a", "--node", "n1", "--san", server.api]);
    const log = server.log();
    expect(log).toContain('"rpc":"Attach"');
    expect(log).toContain(credential.pskIdentity);
    expect(log).toContain("Unauthenticated");
    expect(log).not.toContain(credential.pskKey);
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain("not-the-token");
  });

  it("refuses to serve TCP without any way to authenticate", async () => {
    const other = await freshSan();
    try {
      const sentence = expectError(await run(["san", "serve", "--data-dir", other.dataDir, "--api", "tcp://127.0.0.1:0"]), "InvalidArgument");
      expect(sentence).toContain("without authentication: pass --api-token-file FILE");
    } finally {
      other.cleanup();
    }
  });
});

/** Makes a CA, a server certificate for 127.0.0.1 and a client certificate with openssl; null when openssl is missing. */
function makeCertificates(dir: string): { server: string; client: string; caOnly: string; rogue: string } | null {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    return null;
  }
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ecKey, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=esan-test-ca", "-days", "1");
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"],
    ["client", "extendedKeyUsage=clientAuth\n"],
  ] as const) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl("req", ...ecKey, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=esan-${name}`);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`);
  }
  const layout = (name: string, files: Record<string, string>) => {
    const target = path.join(dir, name);
    fs.mkdirSync(target);
    for (const [to, from] of Object.entries(files)) fs.copyFileSync(path.join(dir, from), path.join(target, to));
    return target;
  };
  // A client certificate from a CA the service does not trust.
  openssl("req", "-x509", ...ecKey, "-keyout", "rogue-ca.key", "-out", "rogue-ca.crt", "-subj", "/CN=rogue-ca", "-days", "1");
  openssl("req", ...ecKey, "-keyout", "rogue.key", "-out", "rogue.csr", "-subj", "/CN=esan-rogue");
  openssl("x509", "-req", "-in", "rogue.csr", "-CA", "rogue-ca.crt", "-CAkey", "rogue-ca.key", "-CAcreateserial", "-out", "rogue.crt", "-days", "1", "-extfile", "client.ext");
  return {
    server: layout("server-tls", { "tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt" }),
    client: layout("client-tls", { "tls.crt": "client.crt", "tls.key": "client.key", "ca.crt": "ca.crt" }),
    caOnly: layout("ca-only", { "ca.crt": "ca.crt" }),
    rogue: layout("rogue-tls", { "tls.crt": "rogue.crt", "tls.key": "rogue.key", "ca.crt": "ca.crt" }),
  };
}

describe("SAN API over TCP with mutual TLS", () => {
  let san: Awaited<ReturnType<typeof freshSan>>;
  let certificates: ReturnType<typeof makeCertificates> = null;
  let tcp = "";

  beforeAll(async () => {
    san = await freshSan();
    certificates = makeCertificates(san.root);
    // Never a skip: openssl comes with the machine; without it the suite fails here and says why.
    if (!certificates) throw new Error("openssl is not installed, so no certificates can be made for the mutual TLS tests.");
    const server = await serve(san.dataDir, ["--api", "tcp://127.0.0.1:0", "--api-tls-dir", certificates.server]);
    tcp = server.endpoints.api.find((a) => a.startsWith("tcp://")) ?? "";
  });

  afterAll(async () => {
    await killServers();
    san.cleanup();
  });

  it("serves a client certificate signed by the service's CA, and refuses one without, or from another CA", async () => {
    expect(await runJson(["volume-group", "create", "vg1", "--san", tcp, "--san-tls-dir", certificates!.client])).toMatchObject({ name: "vg1" });
    const sentence = expectError(await run(["volume-group", "list", "--san", tcp, "--san-tls-dir", certificates!.caOnly]), "Unauthenticated");
    expect(sentence).toContain("client certificate");
    expectError(await run(["volume-group", "list", "--san", tcp, "--san-tls-dir", certificates!.rogue]), "Unauthenticated");
  });
});
