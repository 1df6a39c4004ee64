// `esan san serve`: turns flags into a SanServiceConfig and runs the service until SIGTERM or SIGINT.
import path from "node:path";
import { Option, type Command } from "commander";
import type { ApiTls } from "../san/api-server.ts";
import { readTlsDir, readTokenFile } from "../san/credentials.ts";
import { formatEndpoint, parseEndpoint, type Endpoint } from "../san/endpoints.ts";
import type { SanServiceConfig, ServiceEndpoints } from "../san/service.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import { makePrinter, requireDataDir } from "./context.ts";
import { parseDuration } from "./units.ts";

/** Raw option values of `san serve`. */
export interface ServeFlags {
  api: string[];
  nbd: string[];
  apiTokenFile?: string;
  apiTlsDir?: string;
  nbdPlainUnix?: boolean;
  nbdAdvertise?: string;
  shutdownTimeout: string;
  logLevel: string;
}

/**
 * The listeners of one kind: at most one unix socket (default DATA_DIR/NAME.sock, always present so local tools can
 * reach the service) and at most one TCP endpoint.
 */
export function listeners(values: readonly string[], option: string, defaultSocket: string): Endpoint[] {
  const parsed = values.map((value) => parseEndpoint(value, option));
  for (const kind of ["unix", "tcp"] as const) {
    if (parsed.filter((e) => e.kind === kind).length > 1) {
      throw new InvalidArgumentError(`Cannot use ${option} more than once for ${kind === "unix" ? "a unix socket" : "TCP"}: give one unix:/// and at most one tcp:// endpoint.`);
    }
  }
  if (!parsed.some((e) => e.kind === "unix")) parsed.unshift({ kind: "unix", path: defaultSocket });
  return parsed;
}

/** Turns `san serve` flags into the service's config (reading the token and TLS files). */
export function serveConfig(dataDir: string, flags: ServeFlags): Omit<SanServiceConfig, "logger"> {
  const root = path.resolve(dataDir);
  const config: Omit<SanServiceConfig, "logger"> = {
    dataDir: root,
    api: listeners(flags.api, "--api", path.join(root, "api.sock")),
    nbd: listeners(flags.nbd, "--nbd", path.join(root, "nbd.sock")),
    nbdPlainUnix: flags.nbdPlainUnix === true,
    shutdownTimeoutMs: parseDuration(flags.shutdownTimeout, "--shutdown-timeout"),
  };
  if (flags.apiTokenFile !== undefined) config.apiToken = readTokenFile(flags.apiTokenFile, "--api-token-file");
  if (flags.apiTlsDir !== undefined) {
    const files = readTlsDir(flags.apiTlsDir, "--api-tls-dir", "server");
    const tls: ApiTls = { certChain: files.cert ?? Buffer.alloc(0), privateKey: files.key ?? Buffer.alloc(0) };
    if (files.ca) tls.clientCa = files.ca;
    config.apiTls = tls;
  }
  if (flags.nbdAdvertise !== undefined) config.nbdAdvertise = formatEndpoint(parseEndpoint(flags.nbdAdvertise, "--nbd-advertise"));
  return config;
}

/** The one line `san serve` prints once it listens. */
export function formatReady(endpoints: ServiceEndpoints): string {
  return `esan san serving ${endpoints.dataDir} (pid ${endpoints.pid}): api ${endpoints.api.join(", ")}; nbd ${endpoints.nbd.join(", ")}`;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds `serve` to the `san` command group. */
export function registerServeCommand(san: Command): void {
  san
    .command("serve")
    .description("run the SAN as a service: the SAN API (gRPC) and the NBD data endpoint, until SIGTERM or SIGINT")
    .option("--api <url>", "SAN API listener, unix:///PATH and/or tcp://HOST:PORT; repeatable (default: unix://DATA_DIR/api.sock)", collect, [])
    .option("--nbd <url>", "NBD listener, unix:///PATH and/or tcp://HOST:PORT (TLS-PSK); repeatable (default: unix://DATA_DIR/nbd.sock)", collect, [])
    .option("--api-token-file <file>", "bearer token that TCP API callers must send")
    .option("--api-tls-dir <dir>", "TLS for the TCP API: tls.crt and tls.key, plus ca.crt to require client certificates")
    .option("--nbd-plain-unix", "also serve NBD clients without TLS on the unix socket (local tools; they see every volume and snapshot)")
    .option("--nbd-advertise <url>", "NBD address that attach hands out (default: the TCP NBD listener, else the unix one)")
    .option("--shutdown-timeout <duration>", "how long SIGTERM waits for in-flight calls before cancelling them", "30s")
    .addOption(new Option("--log-level <level>", "log level of the JSON log on stderr").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"))
    .action(async (flags: ServeFlags, command: Command) => {
      const config = serveConfig(requireDataDir(command), flags);
      const printer = makePrinter(command);
      // Loaded here so that other commands do not pay for gRPC, pino and the NBD server at start-up.
      const [{ runService }, { createLogger }] = await Promise.all([import("../san/service.ts"), import("../san/logger.ts")]);
      await runService({ ...config, logger: createLogger({ level: flags.logLevel }) }, (endpoints) => {
        // One line either way, so a supervisor or a test can read the endpoints with a line reader.
        printer.sink.stdout(`${printer.json ? JSON.stringify(endpoints) : formatReady(endpoints)}\n`);
      });
    });
}
