// Test harness: a San in a temp dir and an NbdServer on a unix socket there (and optionally 127.0.0.1 port 0).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { NbdExportProvider } from "../../src/nbd/backend.ts";
import type { NbdTlsMode } from "../../src/nbd/connection.ts";
import type { NbdLogger } from "../../src/nbd/logger.ts";
import { NbdServer } from "../../src/nbd/server.ts";
import { San } from "../../src/storage/san.ts";
import { SanTestProvider, type SanTestProviderOptions } from "./nbd-provider.ts";

/** A San in a fresh directory (tmpfs when available), with volume group `vg`. */
export interface TestSan {
  san: San;
  dir: string;
  cleanup: () => void;
}

/** Creates a San for NBD tests; `cleanup` closes it and removes its directory. */
export function createTestSan(options: { capacityBytes?: number; chunkSizeBytes?: number } = {}): TestSan {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, "esan-nbd-san-"));
  const san = San.create(path.join(dir, "san"), {
    capacityBytes: options.capacityBytes ?? 4 * 1024 * 1024 * 1024,
    chunkSizeBytes: options.chunkSizeBytes ?? 64 * 1024,
  });
  san.createVolumeGroup("vg");
  return {
    san,
    dir,
    cleanup: () => {
      try {
        san.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** A running test server. */
export interface TestNbdServer {
  server: NbdServer;
  /** Directory holding the socket (and anything a test writes, like PSK files). */
  dir: string;
  socketPath: string;
  /** The TCP port when `tcp` was asked for. */
  tcpPort: number | null;
  /** libnbd URI of an export on the unix socket, optionally with TLS-PSK. */
  uri(exportName: string, tls?: { identity: string; pskFile: string }): string;
  /** qemu image-opts style JSON of an export on the unix socket (plain). */
  qemuJson(exportName: string): string;
  close(): Promise<void>;
}

/** Options of startTestNbdServer. */
export interface TestNbdServerOptions {
  provider: NbdExportProvider;
  tls?: NbdTlsMode;
  tcp?: boolean;
  logger?: NbdLogger;
  handshakeTimeoutMs?: number;
}

/** Starts an NbdServer on `DIR/nbd.sock` (and 127.0.0.1:0 with `tcp`). */
export async function startTestNbdServer(options: TestNbdServerOptions): Promise<TestNbdServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "esan-nbd-"));
  const socketPath = path.join(dir, "nbd.sock");
  const listen = [`unix://${socketPath}`];
  if (options.tcp) listen.push("tcp://127.0.0.1:0");
  const server = new NbdServer({
    provider: options.provider,
    listen,
    tls: options.tls ?? "optional",
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
  });
  const addresses = await server.listen();
  const tcp = addresses.find((a) => a.startsWith("tcp://"));
  return {
    server,
    dir,
    socketPath,
    tcpPort: tcp ? Number(tcp.slice(tcp.lastIndexOf(":") + 1)) : null,
    uri: (exportName, tls) => {
      const name = encodeURIComponent(exportName);
      if (!tls) return `nbd+unix:///${name}?socket=${socketPath}`;
      return `nbds+unix://${encodeURIComponent(tls.identity)}@/${name}?socket=${socketPath}&tls-psk-file=${tls.pskFile}`;
    },
    qemuJson: (exportName) => `json:${JSON.stringify({ driver: "nbd", server: { type: "unix", path: socketPath }, export: exportName })}`,
    close: async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A San, a SanTestProvider over it and a server, torn down together. */
export interface NbdFixture extends TestSan {
  provider: SanTestProvider;
  nbd: TestNbdServer;
  teardown: () => Promise<void>;
}

/** The usual fixture: San + provider + server on a unix socket. */
export async function startNbdFixture(
  options: { san?: { capacityBytes?: number; chunkSizeBytes?: number }; provider?: SanTestProviderOptions } & Omit<TestNbdServerOptions, "provider"> = {},
): Promise<NbdFixture> {
  const testSan = createTestSan(options.san);
  const provider = new SanTestProvider(testSan.san, options.provider);
  const nbd = await startTestNbdServer({ ...options, provider });
  return {
    ...testSan,
    provider,
    nbd,
    teardown: async () => {
      await nbd.close();
      testSan.cleanup();
    },
  };
}

/** Writes a libnbd/qemu PSK file (`identity:hexkey`) as DIR/keys.psk and returns its path. */
export function writePskFile(dir: string, identity: string, key: Buffer): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "keys.psk");
  fs.writeFileSync(file, `${identity}:${key.toString("hex")}\n`, { mode: 0o600 });
  return file;
}
