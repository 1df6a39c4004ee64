// The kernel NBD path, chosen only where /dev/nbd0 exists and qemu-nbd is installed. nbd-client 3.24 cannot do
// TLS-PSK (X.509 only), so qemu-nbd, whose tls-creds-psk object reads IDENTITY:KEY lines from DIR/keys.psk, makes the
// TLS connection and drives /dev/nbdN. The kernel device outlives the plugin like nbdfuse does. This machine has no
// nbd module, so the path is kept small; tests run the nbdfuse path.
import fs from "node:fs";
import path from "node:path";
import { parseEndpoint } from "../../san/endpoints.ts";
import { runTool, runToolOk } from "./commands.ts";
import type { ConnectionRecord } from "./staging-store.ts";

/** Whether this node can use the kernel NBD path: the nbd module's devices and qemu-nbd. */
export async function kernelNbdAvailable(): Promise<boolean> {
  if (!fs.existsSync("/dev/nbd0")) return false;
  return (await runTool("sh", ["-c", "command -v qemu-nbd"]).catch(() => null))?.code === 0;
}

/** Whether /dev/nbdN has a live connection (the kernel shows the pid of the process that set it up). */
export function isNbdConnected(device: string): boolean {
  return fs.existsSync(`/sys/block/${path.basename(device)}/pid`);
}

/** The first /dev/nbdN without a connection. */
function freeNbdDevice(): string | undefined {
  const names = fs.readdirSync("/sys/block").filter((name) => /^nbd\d+$/.test(name));
  names.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  const free = names.find((name) => !isNbdConnected(`/dev/${name}`));
  return free === undefined ? undefined : `/dev/${free}`;
}

/** qemu's --image-opts for the export over TLS-PSK; commas in values are doubled as qemu's option syntax wants. */
export function qemuImageOpts(connection: ConnectionRecord): string {
  const quote = (value: string) => value.replaceAll(",", ",,");
  const endpoint = parseEndpoint(connection.nbdAddress, "publish_context NBD address");
  const server = endpoint.kind === "unix" ? `server.type=unix,server.path=${quote(endpoint.path)}` : `server.type=inet,server.host=${quote(endpoint.host)},server.port=${endpoint.port}`;
  return `driver=nbd,${server},export=${quote(connection.exportName)},tls-creds=esan-tls`;
}

/** Connects the export to a free /dev/nbdN with qemu-nbd (which daemonizes); `pskDir` holds keys.psk. */
export async function connectKernelNbd(connection: ConnectionRecord, pskDir: string, readOnly: boolean): Promise<string> {
  const device = freeNbdDevice();
  if (device === undefined) throw new Error("Cannot attach over kernel NBD: every /dev/nbdN is in use. Load the nbd module with more devices (nbds_max).");
  await runToolOk("qemu-nbd", [
    "--connect",
    device,
    "--object",
    `tls-creds-psk,id=esan-tls,endpoint=client,dir=${pskDir.replaceAll(",", ",,")},username=${connection.pskIdentity}`,
    "--image-opts",
    qemuImageOpts(connection),
    ...(readOnly ? ["--read-only"] : []),
    "--cache=none",
  ]);
  return device;
}

/** `qemu-nbd -d`: drops the connection of /dev/nbdN; no-op when it is not connected. */
export async function disconnectKernelNbd(device: string): Promise<void> {
  if (!isNbdConnected(device)) return;
  await runToolOk("qemu-nbd", ["--disconnect", device]);
}
