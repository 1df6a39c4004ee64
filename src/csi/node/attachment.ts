// One staged volume's block device, whichever way it is attached: nbdfuse + a loop device (here, and wherever the
// nbd module is missing) or the kernel NBD device. connect, check, probe the link and disconnect, each safe to repeat.
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { withPskFile } from "../publish-context.ts";
import { runTool } from "./commands.ts";
import { connectKernelNbd, disconnectKernelNbd, isNbdConnected } from "./kernel-nbd.ts";
import { attachLoop, detachLoop, loopBackingFile } from "./loop-device.ts";
import { isNbdfuseServing, probeNbdfuseLink, startNbdfuse, stopNbdfuse } from "./nbdfuse.ts";
import type { AttachmentState, StagingRecord, StagingStore } from "./staging-store.ts";

/** Which data path a node uses: chosen once at start (kernel NBD only where /dev/nbd0 and qemu-nbd exist). */
export type NbdMode = "nbdfuse" | "kernel";

/** What the node's operations share. */
export interface NodeContext {
  store: StagingStore;
  logger: Logger;
  nbdMode: NbdMode;
}

/** Connects the record's export and resolves the attachment and its block device. Undoes itself on failure. */
export async function connect(context: NodeContext, record: StagingRecord): Promise<{ attachment: AttachmentState; device: string }> {
  const volumeDir = context.store.volumeDir(record.volumeId);
  const pskFile = context.store.pskFile(record.volumeId);
  if (context.nbdMode === "kernel") {
    const device = await connectKernelNbd(record.connection, path.dirname(pskFile), record.readOnly);
    return { attachment: { kind: "kernel", device }, device };
  }
  const helper = await startNbdfuse({ volumeDir, connection: record.connection, pskFile, readOnly: record.readOnly });
  try {
    const loopDevice = await attachLoop(helper.diskFile, record.readOnly);
    context.logger.info({ volumeId: record.volumeId, nbdfusePid: helper.pid, loopDevice }, "attached the volume through nbdfuse and a loop device");
    return { attachment: { kind: "nbdfuse", ...helper, loopDevice }, device: loopDevice };
  } catch (error) {
    await stopNbdfuse(helper);
    throw error;
  }
}

/** Whether the recorded attachment still works as recorded: its helper runs and its device is still the one over it. */
export function isAttachmentHealthy(record: StagingRecord): boolean {
  const attachment = record.attachment;
  if (!attachment) return false;
  if (attachment.kind === "kernel") return isNbdConnected(attachment.device);
  return isNbdfuseServing(attachment) && attachment.loopDevice !== undefined && loopBackingFile(attachment.loopDevice) === attachment.diskFile;
}

/** Detaches the loop device and stops nbdfuse (or disconnects the kernel device); no-op for parts already gone. */
export async function disconnect(record: StagingRecord): Promise<void> {
  const attachment = record.attachment;
  if (!attachment) return;
  if (attachment.kind === "kernel") {
    await disconnectKernelNbd(attachment.device);
    return;
  }
  if (attachment.loopDevice !== undefined && loopBackingFile(attachment.loopDevice)?.replace(/ \(deleted\)$/, "") === attachment.diskFile) {
    await detachLoop(attachment.loopDevice);
  }
  await stopNbdfuse(attachment);
}

/** Undefined when the NBD link answers a direct read, else why it does not (for the volume condition). */
export async function probeLink(record: StagingRecord): Promise<string | undefined> {
  const attachment = record.attachment;
  if (!attachment) return "the volume has no NBD attachment";
  if (attachment.kind === "kernel") {
    if (!isNbdConnected(attachment.device)) return `${attachment.device} is not connected`;
    const read = await runTool("dd", [`if=${attachment.device}`, "of=/dev/null", "bs=4096", "count=1", "iflag=direct", "status=none"], 10_000);
    return read.code === 0 ? undefined : `a read from ${attachment.device} failed`;
  }
  const reason = await probeNbdfuseLink(attachment);
  if (reason !== undefined) return reason;
  if (attachment.loopDevice === undefined || loopBackingFile(attachment.loopDevice) !== attachment.diskFile) {
    return `the loop device ${attachment.loopDevice ?? "(none)"} no longer points at the nbdfuse file`;
  }
  return undefined;
}

/** The size of the export as the SAN reports it now (nbdinfo over the same credential), or undefined when it cannot be asked. */
export async function exportSizeBytes(context: NodeContext, record: StagingRecord): Promise<number | undefined> {
  const pskFile = context.store.pskFile(record.volumeId);
  if (!fs.existsSync(pskFile)) return undefined;
  const result = await runTool("nbdinfo", ["--size", withPskFile(record.connection.nbdUri, pskFile)], 30_000).catch(() => undefined);
  if (result?.code !== 0) return undefined;
  const size = Number(result.stdout.trim());
  return Number.isSafeInteger(size) ? size : undefined;
}
