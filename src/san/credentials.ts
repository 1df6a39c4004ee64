// Reading the SAN API's credentials from files: a bearer token file, and a TLS directory laid out like a Kubernetes
// TLS secret (tls.crt, tls.key, ca.crt), for the service and for its clients alike.
import fs from "node:fs";
import path from "node:path";
import { InvalidArgumentError } from "../storage/errors.ts";

/** TLS material read from a directory; every file is optional until a role requires it. */
export interface TlsFiles {
  /** ca.crt: for a server, the CA client certificates must chain to (mutual TLS); for a client, the CA of the server. */
  ca?: Buffer;
  /** tls.crt: this side's certificate chain. */
  cert?: Buffer;
  /** tls.key: this side's private key. */
  key?: Buffer;
}

/** Reads a bearer token: the file's content without surrounding whitespace, refused when empty or unreadable. */
export function readTokenFile(file: string, option: string): string {
  let token: string;
  try {
    token = fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new InvalidArgumentError(`Cannot read ${option} ${file}: ${reason(err)}.`, { cause: err });
  }
  if (token === "") throw new InvalidArgumentError(`Cannot use ${option} ${file}: the file is empty; put the bearer token in it.`);
  return token;
}

/**
 * Reads tls.crt, tls.key and ca.crt from `dir`. tls.crt and tls.key go together; a server needs both.
 * Files that are absent are left out.
 */
export function readTlsDir(dir: string, option: string, role: "server" | "client"): TlsFiles {
  const read = (name: string): Buffer | undefined => {
    const file = path.join(dir, name);
    try {
      return fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new InvalidArgumentError(`Cannot read ${option} ${dir}: ${name}: ${reason(err)}.`, { cause: err });
    }
  };
  const files: TlsFiles = {};
  const ca = read("ca.crt");
  const cert = read("tls.crt");
  const key = read("tls.key");
  if (ca) files.ca = ca;
  if (cert) files.cert = cert;
  if (key) files.key = key;
  if ((cert === undefined) !== (key === undefined) || (role === "server" && cert === undefined)) {
    throw new InvalidArgumentError(
      `Cannot use ${option} ${dir}: it needs tls.crt and tls.key together${role === "server" ? " (the service's certificate)" : " (a client certificate), or neither"}, and optionally ca.crt.`,
    );
  }
  return files;
}

/** The reason in a Node file system error ("ENOENT: no such file or directory, open 'x'" → "no such file or directory"). */
function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /^[A-Z]+: (.+?), /.exec(message)?.[1] ?? message;
}
