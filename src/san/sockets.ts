// Unix socket files of the service: clear a stale one left by a crashed owner, refuse a live one, and restrict access.
import fs from "node:fs";
import net from "node:net";
import { InvalidArgumentError } from "../storage/errors.ts";

/**
 * Makes `socketPath` free to bind. A socket nobody answers on is stale (its server died) and is removed; a live one,
 * or a path that is not a socket, is refused with a sentence, so we never steal another server's endpoint.
 */
export async function clearStaleSocket(socketPath: string, what: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new InvalidArgumentError(`Cannot listen on ${what} unix://${socketPath}: a file that is not a socket is in the way; remove it or choose another path.`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) {
    throw new InvalidArgumentError(`Cannot listen on ${what} unix://${socketPath}: another server is listening there; stop it or choose another path.`);
  }
  fs.rmSync(socketPath, { force: true });
}

/** Owner-only access: anyone who can connect to the API socket administers the SAN. */
export function restrictSocket(socketPath: string): void {
  fs.chmodSync(socketPath, 0o600);
}

/** Removes a socket file this process bound, ignoring one already gone. */
export function removeSocket(socketPath: string): void {
  fs.rmSync(socketPath, { force: true });
}
