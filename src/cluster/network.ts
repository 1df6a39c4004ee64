// Loopback ports and readiness probes of the local cluster's servers.
import http from "node:http";
import net from "node:net";

/** A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Whether a unix socket (or `host:port`) accepts a connection now. */
export function canConnect(target: string): Promise<boolean> {
  return new Promise((resolve) => {
    const match = /^(.+):(\d+)$/.exec(target);
    const connection = match && !target.startsWith("/") ? net.createConnection(Number(match[2]), match[1]) : net.createConnection(target);
    const done = (ok: boolean) => {
      connection.destroy();
      resolve(ok);
    };
    connection.once("connect", () => done(true));
    connection.once("error", () => done(false));
    connection.setTimeout(2_000, () => done(false));
  });
}

/** The body of a plain HTTP GET, or null when nothing answers or the status is not 200. */
export function httpGet(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: 2_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve(response.statusCode === 200 ? Buffer.concat(chunks).toString("utf8") : null));
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(null));
  });
}
