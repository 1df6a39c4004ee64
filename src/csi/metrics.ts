// Prometheus metrics of `esan csi` (prom-client): how long each CSI call took and how it ended, plus, where a SAN is
// reachable, its volume and snapshot counts and its capacity, read fresh at every scrape.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import type { SanClient } from "../san/san-client.ts";

/** Buckets of the call duration histogram, in seconds: 1 ms to 2 minutes. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The driver's metrics. One instance per process; tests make their own. */
export class CsiMetrics {
  readonly registry = new Registry();
  readonly #operations: Histogram<"method" | "grpc_code">;

  constructor() {
    this.#operations = new Histogram({
      name: "esan_csi_operations_seconds",
      help: "Duration of CSI calls by method and the gRPC code they ended with.",
      labelNames: ["method", "grpc_code"],
      buckets: DURATION_BUCKETS,
      registers: [this.registry],
    });
  }

  /** Records one finished call. */
  observe(method: string, grpcCode: string, seconds: number): void {
    this.#operations.observe({ method, grpc_code: grpcCode }, seconds);
  }

  /**
   * Adds gauges read from the SAN at scrape time: volumes, instant and disk snapshots, capacity, provisioned, physical
   * and free bytes. A scrape while the SAN is unreachable leaves them out instead of failing the scrape.
   */
  addSanGauges(client: SanClient, logger: Logger): void {
    const readSan = onePerScrape(client, logger);
    const gauge = (name: string, help: string, read: (info: SanSnapshot) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect: async function (this: Gauge) {
          const info = await readSan();
          if (info) this.set(read(info));
          else this.reset();
        },
      });
    };
    gauge("esan_csi_volumes", "Volumes in the SAN.", (s) => s.volumeCount);
    gauge("esan_csi_snapshots", "Instant snapshots in the SAN.", (s) => s.snapshotCount);
    gauge("esan_csi_disk_snapshots", "Disk snapshots (durable tier) the SAN knows.", (s) => s.diskSnapshotCount);
    gauge("esan_san_capacity_bytes", "Capacity of the SAN in bytes.", (s) => s.capacityBytes);
    gauge("esan_san_provisioned_bytes", "Sum of the sizes of all volumes in bytes.", (s) => s.provisionedBytes);
    gauge("esan_san_physical_bytes", "Bytes of chunks held by any image.", (s) => s.physicalBytes);
    gauge("esan_san_free_bytes", "Capacity minus physical bytes.", (s) => s.freeBytes);
  }

  /** The exposition text, as served on /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves /metrics on HOST:PORT (port 0 picks one); resolves with the bound address once listening. */
  async serve(host: string, port: number, logger: Logger): Promise<{ address: string; close: () => Promise<void> }> {
    const server = http.createServer((request, response) => {
      if (request.method !== "GET" || (request.url ?? "").split("?")[0] !== "/metrics") {
        response.writeHead(404, { "content-type": "text/plain" }).end("Not found: metrics are served on GET /metrics.\n");
        return;
      }
      this.text().then(
        (body) => response.writeHead(200, { "content-type": this.registry.contentType }).end(body),
        (err: unknown) => {
          logger.error({ err }, "metrics scrape failed");
          response.writeHead(500, { "content-type": "text/plain" }).end("The metrics could not be collected; the driver's log has the details.\n");
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const bound = server.address() as AddressInfo;
    const address = `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
    return { address, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }
}

/** One scrape's view of the SAN. */
interface SanSnapshot {
  volumeCount: number;
  snapshotCount: number;
  diskSnapshotCount: number;
  capacityBytes: number;
  provisionedBytes: number;
  physicalBytes: number;
  freeBytes: number;
}

/**
 * A reader of the SAN that every gauge of one scrape shares: the gauges collect concurrently, so the first asks the SAN
 * and the others await the same answer; the next scrape asks again.
 */
function onePerScrape(client: SanClient, logger: Logger): () => Promise<SanSnapshot | null> {
  let pending: Promise<SanSnapshot | null> | null = null;
  return () => {
    pending ??= (async () => {
      try {
        const [info, disks] = await Promise.all([client.info(), client.listDiskSnapshots()]);
        return { ...info, diskSnapshotCount: disks.length };
      } catch (err) {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: the SAN did not answer; its gauges are left out of this scrape");
        return null;
      } finally {
        setImmediate(() => (pending = null));
      }
    })();
    return pending;
  };
}
