// Key material of a local cluster: a CA and serving certificates for 127.0.0.1 (openssl; node:crypto cannot issue
// X.509 certificates), the service-account signing key pair (node:crypto), and random bearer tokens.
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A certificate and its key, as files. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/** The cluster's CA and what it issued. */
export interface ClusterPki {
  ca: CertificateFiles;
  /** The kube-apiserver's serving certificate (127.0.0.1, localhost). */
  apiserver: CertificateFiles;
  /** csi-snapshot-metadata's serving certificate (127.0.0.1, localhost). */
  snapshotMetadata: CertificateFiles;
  serviceAccountPublicKey: string;
  serviceAccountPrivateKey: string;
}

/** Creates the CA, two serving certificates and the service-account key pair under `dir` (mode 0700). */
export async function createPki(dir: string): Promise<ClusterPki> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: path.join(dir, "ca.crt"), key: path.join(dir, "ca.key") };
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca.key, "-out", ca.cert, "-days", "3650", "-subj", "/CN=esan-local-ca"]);
  const apiserver = await issueServing(dir, ca, "apiserver", "kube-apiserver");
  const snapshotMetadata = await issueServing(dir, ca, "snapshot-metadata", "csi-snapshot-metadata");
  const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const serviceAccountPublicKey = path.join(dir, "sa.pub");
  const serviceAccountPrivateKey = path.join(dir, "sa.key");
  fs.writeFileSync(serviceAccountPublicKey, publicKey.export({ type: "spki", format: "pem" }));
  fs.writeFileSync(serviceAccountPrivateKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  return { ca, apiserver, snapshotMetadata, serviceAccountPublicKey, serviceAccountPrivateKey };
}

/** A random bearer token (hex). */
export function randomToken(): string {
  return crypto.randomBytes(24).toString("hex");
}

async function issueServing(dir: string, ca: CertificateFiles, name: string, commonName: string): Promise<CertificateFiles> {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const extensions = path.join(dir, `${name}.ext`);
  fs.writeFileSync(extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", files.key, "-out", csr, "-subj", `/CN=${commonName}`]);
  await openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-out", files.cert, "-days", "3650", "-extfile", extensions]);
  fs.chmodSync(files.key, 0o600);
  return files;
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`\`openssl ${args[0]}\` failed while making the cluster's certificates: ${stderr.trim() || (error as Error).message}`, { cause: error });
  }
}
