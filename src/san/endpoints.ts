// Endpoint URLs of the SAN service: `unix:///PATH` and `tcp://HOST:PORT`, parsed once into a value every listener and client shares.
import path from "node:path";
import { InvalidArgumentError } from "../storage/errors.ts";

/** A unix socket path (absolute) or a TCP host and port (0 = pick a free port, for listeners). */
export type Endpoint = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_UNIX_PATH_BYTES = 107;

/** Parses `unix:///ABSOLUTE/PATH` or `tcp://HOST:PORT`; `what` names the option in the refusal sentence. */
export function parseEndpoint(text: string, what: string): Endpoint {
  if (text.startsWith("unix://")) {
    const socketPath = text.slice("unix://".length);
    if (!path.isAbsolute(socketPath)) {
      throw new InvalidArgumentError(`Cannot use ${what} "${text}": a unix socket is written unix:///ABSOLUTE/PATH, with three slashes.`);
    }
    if (Buffer.byteLength(socketPath) > MAX_UNIX_PATH_BYTES) {
      throw new InvalidArgumentError(
        `Cannot use ${what} "${text}": a unix socket path may be at most ${MAX_UNIX_PATH_BYTES} bytes; choose a shorter path.`,
      );
    }
    return { kind: "unix", path: path.normalize(socketPath) };
  }
  if (text.startsWith("tcp://")) {
    let url: URL | null;
    try {
      url = new URL(text);
    } catch {
      url = null;
    }
    const port = url === null || url.port === "" ? Number.NaN : Number(url.port);
    if (url === null || url.hostname === "" || !Number.isInteger(port) || url.pathname.replace(/^\/$/, "") !== "" || url.search !== "") {
      throw new InvalidArgumentError(`Cannot use ${what} "${text}": write a TCP endpoint as tcp://HOST:PORT, such as tcp://127.0.0.1:7443.`);
    }
    return { kind: "tcp", host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
  }
  throw new InvalidArgumentError(`Cannot use ${what} "${text}": write unix:///PATH for a unix socket or tcp://HOST:PORT for TCP.`);
}

/** The URL form of an endpoint, as printed and as accepted back by parseEndpoint. */
export function formatEndpoint(endpoint: Endpoint): string {
  if (endpoint.kind === "unix") return `unix://${endpoint.path}`;
  return `tcp://${hostPort(endpoint.host, endpoint.port)}`;
}

/** The target string @grpc/grpc-js binds or dials for an endpoint. */
export function grpcTarget(endpoint: Endpoint): string {
  return endpoint.kind === "unix" ? `unix://${endpoint.path}` : hostPort(endpoint.host, endpoint.port);
}

/** HOST:PORT, with an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
