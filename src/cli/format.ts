// Human renderings of engine objects: key: value lines for one object, aligned tables for lists, sizes in IEC units.
import type { AttachmentCredential, AttachmentInfo } from "../san/san-client.ts";
import type {
  CheckReport,
  CreationSource,
  DiffResult,
  GroupSnapshotInfo,
  SanInfo,
  SnapshotInfo,
  VolumeGroupInfo,
  VolumeInfo,
} from "../storage/types.ts";
import { formatDuration, formatSize } from "./units.ts";

/** Aligns `key: value` lines so the values start in one column. */
export function keyValues(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...rows.map(([key]) => key.length + 1));
  return rows.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`.trimEnd()).join("\n");
}

/** Renders rows under upper-case headers, columns padded and separated by two spaces; `emptyText` when no rows. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, emptyText: string): string {
  if (rows.length === 0) return emptyText;
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** A size for a detail view: IEC units and the exact byte count. */
export function sizeWithBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${formatSize(bytes)} (${bytes} bytes)`;
}

/** One word-ish description of where a volume's content came from. */
export function describeSource(source: CreationSource): string {
  return source.kind === "none" ? "empty" : `${source.kind} ${source.sourceId}`;
}

/** `san show` / `san create`. */
export function formatSanInfo(info: SanInfo): string {
  const rate = `${info.limits.snapshotRateCount} per ${formatDuration(info.limits.snapshotRateWindowMs)} per volume`;
  return keyValues([
    ["capacity", sizeWithBytes(info.capacityBytes)],
    ["provisioned", sizeWithBytes(info.provisionedBytes)],
    ["physical", sizeWithBytes(info.physicalBytes)],
    ["free", sizeWithBytes(info.freeBytes)],
    ["chunk size", formatSize(info.chunkSizeBytes)],
    ["volume groups", String(info.volumeGroupCount)],
    ["volumes", String(info.volumeCount)],
    ["snapshots", String(info.snapshotCount)],
    ["max snapshots per volume", String(info.limits.maxSnapshotsPerVolume)],
    ["snapshot rate", rate],
  ]);
}

/** `volume-group list`. */
export function formatVolumeGroupTable(groups: readonly VolumeGroupInfo[]): string {
  return table(
    ["NAME", "CREATED"],
    groups.map((group) => [group.name, group.createdAt]),
    "no volume groups",
  );
}

/** `volume-group create`. */
export function formatVolumeGroup(group: VolumeGroupInfo): string {
  return keyValues([
    ["name", group.name],
    ["created", group.createdAt],
  ]);
}

/** `volume show` / `volume create` / `volume resize`. */
export function formatVolume(volume: VolumeInfo): string {
  return keyValues([
    ["id", volume.id],
    ["unique id", volume.uniqueId],
    ["size", sizeWithBytes(volume.sizeBytes)],
    ["sector size", String(volume.sectorSize)],
    ["allocated", sizeWithBytes(volume.allocatedBytes)],
    ["used", sizeWithBytes(volume.usedBytes)],
    ["snapshots", String(volume.snapshotCount)],
    ["source", describeSource(volume.creationData)],
    ...(volume.hydration === null ? [] : [["hydration", `${volume.hydration.state} ${volume.hydration.completionPercent}% from disk snapshot ${volume.hydration.diskSnapshot}`] as const]),
    ["created", volume.createdAt],
  ]);
}

/** `volume list`. */
export function formatVolumeTable(volumes: readonly VolumeInfo[]): string {
  return table(
    ["ID", "SIZE", "SECTOR", "ALLOCATED", "USED", "SNAPSHOTS", "SOURCE"],
    volumes.map((volume) => [
      volume.id,
      formatSize(volume.sizeBytes),
      String(volume.sectorSize),
      formatSize(volume.allocatedBytes),
      formatSize(volume.usedBytes),
      String(volume.snapshotCount),
      describeSource(volume.creationData),
    ]),
    "no volumes",
  );
}

/** `snapshot show` / `snapshot create`. */
export function formatSnapshot(snapshot: SnapshotInfo): string {
  return keyValues([
    ["id", snapshot.id],
    ["source", snapshot.sourceId],
    ["source unique id", snapshot.sourceUniqueId],
    ["size", sizeWithBytes(snapshot.sizeBytes)],
    ["sector size", String(snapshot.sectorSize)],
    ["used", sizeWithBytes(snapshot.usedBytes)],
    ["changed", sizeWithBytes(snapshot.changedBytes)],
    ["group snapshot", snapshot.groupSnapshotId ?? "-"],
    ["ready", String(snapshot.readyToUse)],
    ["created", snapshot.createdAt],
  ]);
}

/** `snapshot list`. */
export function formatSnapshotTable(snapshots: readonly SnapshotInfo[]): string {
  return table(
    ["ID", "SOURCE", "SIZE", "USED", "CHANGED", "GROUP", "CREATED"],
    snapshots.map((snapshot) => [
      snapshot.id,
      snapshot.sourceId,
      formatSize(snapshot.sizeBytes),
      formatSize(snapshot.usedBytes),
      formatSize(snapshot.changedBytes),
      snapshot.groupSnapshotId ?? "-",
      snapshot.createdAt,
    ]),
    "no snapshots",
  );
}

/** `group-snapshot show` / `group-snapshot create`: the group, then each member as `snapshot <- source`. */
export function formatGroupSnapshot(group: GroupSnapshotInfo): string {
  const members = group.snapshotIds.map((snapshotId, index) => `  ${snapshotId} <- ${group.sourceIds[index] ?? "?"}`);
  return [keyValues([["id", group.id], ["created", group.createdAt], ["members", String(group.snapshotIds.length)]]), ...members].join("\n");
}

/** `group-snapshot list`. */
export function formatGroupSnapshotTable(groups: readonly GroupSnapshotInfo[]): string {
  return table(
    ["ID", "SNAPSHOTS", "SOURCES", "CREATED"],
    groups.map((group) => [group.id, group.snapshotIds.join(","), group.sourceIds.join(","), group.createdAt]),
    "no group snapshots",
  );
}

/** `snapshot diff`: a summary line, then one line per changed range. */
export function formatDiff(baseId: string, targetId: string, diff: DiffResult): string {
  const summary = `${targetId} differs from ${baseId} in ${formatSize(diff.changedBytes)} (${diff.changedBytes} bytes) over ${diff.ranges.length} range(s) of ${formatSize(diff.chunkSizeBytes)} chunks`;
  const rows = diff.ranges.map((range) => [String(range.offset), String(range.length), formatSize(range.offset), formatSize(range.length)]);
  return rows.length === 0 ? summary : `${summary}\n${table(["OFFSET", "LENGTH", "OFFSET (IEC)", "LENGTH (IEC)"], rows, "")}`;
}

/** `check`: a verdict line with the counts, then one line per fault. */
export function formatCheckReport(report: CheckReport): string {
  const counts = `${report.pages} map pages, ${report.extents} extents, ${report.freeExtents} free extents`;
  if (report.ok) return `ok: no faults (${counts})`;
  return [`FAILED: ${report.faults.length} fault(s) (${counts})`, ...report.faults.map((fault) => `  ${fault}`)].join("\n");
}

/** `volume attach`: the credential a node uses; it includes the secret key, which is the point of the command. */
export function formatAttachment(credential: AttachmentCredential): string {
  return keyValues([
    ["volume", credential.volumeId],
    ["node", credential.nodeId],
    ["psk identity", credential.pskIdentity],
    ["psk key", credential.pskKey],
    ["nbd address", credential.nbdAddress],
    ["export name", credential.exportName],
    ["created", credential.createdAt],
  ]);
}

/** `volume attachments`. */
export function formatAttachmentTable(attachments: readonly AttachmentInfo[]): string {
  return table(
    ["VOLUME", "NODE", "PSK IDENTITY", "CREATED"],
    attachments.map((a) => [a.volumeId, a.nodeId, a.pskIdentity, a.createdAt]),
    "no attachments",
  );
}
