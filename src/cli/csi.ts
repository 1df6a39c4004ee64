// `esan csi`: turns flags into a CsiServerConfig, runs the CSI driver until SIGTERM or SIGINT, and stops it gracefully.
import os from "node:os";
import path from "node:path";
import { Option, type Command } from "commander";
import type { Logger } from "pino";
import type { CsiMode } from "../csi/server.ts";
import { readTlsDir, readTokenFile } from "../san/credentials.ts";
import { parseEndpoint } from "../san/endpoints.ts";
import type { GrpcSanClientOptions } from "../san/grpc-san-client.ts";
import type { SanClient } from "../san/san-client.ts";
import { InvalidArgumentError } from "../storage/errors.ts";
import { globalOptions, makePrinter } from "./context.ts";
import { parseDuration } from "./units.ts";

/** Raw option values of `esan csi`. */
export interface CsiFlags {
  mode: CsiMode;
  endpoint: string;
  nodeId: string[];
  metricsAddress?: string;
  stateDir: string;
  maxVolumes?: string;
  volumeGroup: string;
  shutdownTimeout: string;
  logLevel: string;
}

/** Default directory of the node's staging records. */
export const DEFAULT_NODE_STATE_DIR = "/var/lib/esan/csi-node";

/** `HOST:PORT` of --metrics-address, checked. */
export function parseMetricsAddress(text: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new InvalidArgumentError(`Cannot use --metrics-address "${text}": write HOST:PORT, such as 127.0.0.1:9808 (port 0 picks a free one).`);
  }
  return { host: (match[1] as string).replace(/^\[(.*)\]$/, "$1"), port };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The SanClient of a controller: the service --san names (a controller never opens a data directory itself). */
async function connectSan(command: Command, mode: CsiMode): Promise<SanClient | undefined> {
  if (mode === "node") return undefined;
  const { san, sanTokenFile, sanTlsDir } = globalOptions(command);
  if (san === undefined) {
    command.error(`error: esan csi --mode ${mode} needs the SAN to work on: pass --san unix:///PATH or tcp://HOST:PORT, or set ESAN_SAN.`, { exitCode: 2 });
  }
  const options: GrpcSanClientOptions = {};
  if (sanTokenFile !== undefined) options.token = readTokenFile(sanTokenFile, "--san-token-file");
  if (sanTlsDir !== undefined) options.tls = readTlsDir(sanTlsDir, "--san-tls-dir", "client");
  const { GrpcSanClient } = await import("../san/grpc-san-client.ts");
  return GrpcSanClient.connect(san, options);
}

/** Runs until the first SIGTERM or SIGINT, then stops; a second signal cancels calls still in flight. */
async function untilSignal(logger: Logger): Promise<{ forced: () => boolean }> {
  let signals = 0;
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      logger.info({ signal }, signals === 1 ? "signal received; draining" : "second signal; cancelling what is left");
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  return { forced: () => signals > 1 };
}

/** Adds `csi` to the command tree. */
export function registerCsiCommand(program: Command): void {
  program
    .command("csi")
    .description("run the esan CSI driver (driver name esan.csi.dev) on a unix socket until SIGTERM or SIGINT")
    .addOption(new Option("--mode <mode>", "which CSI services to serve").choices(["controller", "node", "all"]).makeOptionMandatory())
    .requiredOption("--endpoint <url>", "where to serve CSI: unix:///PATH (or tcp://HOST:PORT)")
    .option(
      "--node-id <id>",
      "node mode: this node's id (default: the host name). Controller mode: a node that may have volumes published to it; repeatable (default: any node)",
      collect,
      [],
    )
    .option("--metrics-address <host:port>", "serve Prometheus metrics on http://HOST:PORT/metrics")
    .option("--state-dir <dir>", "node mode: where staging records are kept across restarts", DEFAULT_NODE_STATE_DIR)
    .option("--max-volumes <n>", "node mode: most volumes this node attaches (NodeGetInfo)")
    .option("--volume-group <name>", "controller mode: volume group of volumes whose StorageClass names none", "csi")
    .option("--shutdown-timeout <duration>", "how long SIGTERM waits for calls in flight before cancelling them", "30s")
    .addOption(new Option("--log-level <level>", "log level of the JSON log on stderr").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"))
    .action(async (flags: CsiFlags, command: Command) => {
      const endpoint = parseEndpoint(flags.endpoint, "--endpoint");
      const metricsAddress = flags.metricsAddress === undefined ? undefined : parseMetricsAddress(flags.metricsAddress);
      const shutdownTimeoutMs = parseDuration(flags.shutdownTimeout, "--shutdown-timeout");
      if (flags.mode === "node" && flags.nodeId.length > 1) throw new InvalidArgumentError("esan csi --mode node takes one --node-id: the id of this node.");
      const maxVolumes = flags.maxVolumes === undefined ? undefined : Number(flags.maxVolumes);
      if (maxVolumes !== undefined && (!Number.isSafeInteger(maxVolumes) || maxVolumes < 1)) {
        throw new InvalidArgumentError(`Cannot use --max-volumes "${flags.maxVolumes}": give a whole number of 1 or more.`);
      }
      const printer = makePrinter(command);
      // Loaded here so that other commands do not pay for gRPC, pino and prom-client at start-up.
      const [{ CsiServer }, { createCsiLogger }, { CsiMetrics }, { loadNodeService, localFreezer }] = await Promise.all([
        import("../csi/server.ts"),
        import("../csi/logger.ts"),
        import("../csi/metrics.ts"),
        import("../csi/node-binding.ts"),
      ]);
      const logger = createCsiLogger({ level: flags.logLevel });
      const san = await connectSan(command, flags.mode);
      const nodeId = flags.nodeId[0] ?? os.hostname();
      const metrics = new CsiMetrics();
      if (san) metrics.addSanGauges(san, logger);
      let metricsServer: { address: string; close: () => Promise<void> } | undefined;
      try {
        // The node re-attaches its recorded stagings while it is created, before the socket is bound.
        const node =
          flags.mode === "controller"
            ? null
            : await loadNodeService({ nodeId, stateDir: path.resolve(flags.stateDir), ...(maxVolumes !== undefined ? { maxVolumes } : {}), logger: logger.child({ component: "node" }) });
        const server = await CsiServer.start({
          mode: flags.mode,
          endpoint,
          ...(san ? { san } : {}),
          node,
          ...(node ? { freezer: localFreezer(node) } : {}),
          ...(flags.mode !== "node" && flags.nodeId.length > 0 ? { knownNodes: new Set(flags.nodeId) } : {}),
          defaultVolumeGroup: flags.volumeGroup,
          metrics,
          version: program.version() ?? "unknown",
          logger,
        });
        if (metricsAddress) metricsServer = await metrics.serve(metricsAddress.host, metricsAddress.port, logger);
        const ready = { mode: flags.mode, endpoint: server.endpoint, pid: process.pid, nodeId: flags.mode === "controller" ? null : nodeId, metrics: metricsServer?.address ?? null };
        logger.info(ready, "CSI driver ready");
        printer.sink.stdout(
          `${printer.json ? JSON.stringify(ready) : `esan csi (${flags.mode}) serving ${server.endpoint} (pid ${process.pid})${metricsServer ? `; metrics http://${metricsServer.address}/metrics` : ""}`}\n`,
        );
        const signal = await untilSignal(logger);
        await server.stop(signal.forced() ? 0 : shutdownTimeoutMs);
        // Attachments stay up on purpose: mounted filesystems keep working while the node plugin restarts.
        await node?.close();
        logger.info("CSI driver stopped");
      } finally {
        await metricsServer?.close();
        await san?.close();
      }
    });
}
