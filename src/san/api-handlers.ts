// What each SAN API RPC does: read and check its request, make one SanClient call, shape the response. Transport
// (auth, logging, error mapping) is the server's job; the engine checks names, sizes and ranges itself.
import { InvalidArgumentError } from "../storage/errors.ts";
import type { ByteRange, CreateVolumeRequest, DiffResult, SectorSize } from "../storage/types.ts";
import type { SanClient } from "./san-client.ts";

/** A decoded request message: field names in camelCase, absent `optional` fields missing. */
export type WireRequest = Record<string, unknown>;

/** A unary RPC: one request, one response. */
export interface UnaryRpc {
  kind: "unary";
  /** Changes state: logged at info level (reads and I/O at debug). */
  mutating: boolean;
  handle: (request: WireRequest, client: SanClient) => Promise<unknown>;
}

/** A server-streaming RPC: one request, a sequence of response messages. */
export interface StreamRpc {
  kind: "stream";
  mutating: false;
  handle: (request: WireRequest, client: SanClient) => Promise<unknown[]>;
}

/** Ranges per streamed message: about 200 KB each, far below the message size limit. */
export const RANGES_PER_MESSAGE = 16_384;

/** A string field; the loader always decodes strings, so a wrong type means a hand-built request. */
function text(request: WireRequest, field: string): string {
  const value = request[field];
  if (typeof value !== "string") throw new InvalidArgumentError(`The request field ${field} must be a string.`);
  return value;
}

/** An optional string field: undefined when absent. */
function optionalText(request: WireRequest, field: string): string | undefined {
  return request[field] === undefined || request[field] === null ? undefined : text(request, field);
}

/** A uint64 field, refused beyond 2^53 where JS numbers lose precision. */
function bytes(request: WireRequest, field: string): number {
  const value = request[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`The request field ${field} must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}; got ${String(value)}.`);
  }
  return value;
}

function flag(request: WireRequest, field: string): boolean {
  return request[field] === true;
}

/** Paging fields of list requests: 0 entries and an empty token mean "all" and "from the start". */
function paging(request: WireRequest): { maxEntries?: number; startingToken?: string } {
  const maxEntries = bytes(request, "maxEntries");
  const startingToken = text(request, "startingToken");
  return { ...(maxEntries > 0 ? { maxEntries } : {}), ...(startingToken !== "" ? { startingToken } : {}) };
}

function createVolumeRequest(request: WireRequest): CreateVolumeRequest {
  const result: CreateVolumeRequest = { volumeGroup: text(request, "volumeGroup"), name: text(request, "name"), sizeBytes: bytes(request, "sizeBytes") };
  if (request.sectorSize !== undefined) result.sectorSize = bytes(request, "sectorSize") as SectorSize;
  const source = request.source as WireRequest | undefined | null;
  if (source) result.source = { kind: text(source, "kind") as NonNullable<CreateVolumeRequest["source"]>["kind"], id: text(source, "id") };
  return result;
}

/** Splits ranges into messages of at most `perMessage` ranges, each carrying `extra`; always at least one message. */
export function rangeBatches(ranges: ByteRange[], extra: Record<string, unknown> = {}, perMessage = RANGES_PER_MESSAGE): unknown[] {
  const messages: unknown[] = [];
  for (let start = 0; start === 0 || start < ranges.length; start += perMessage) {
    messages.push({ ...extra, ranges: ranges.slice(start, start + perMessage) });
  }
  return messages;
}

/** A unary RPC whose checks may throw synchronously: the handler always returns a promise. */
const unary = (mutating: boolean, handle: UnaryRpc["handle"]): UnaryRpc => ({ kind: "unary", mutating, handle: async (r, c) => handle(r, c) });
const done = {};

/** A diff streamed in batches of ranges, each repeating the totals. */
function diffRpc(compute: (request: WireRequest, client: SanClient) => Promise<DiffResult>): StreamRpc {
  return {
    kind: "stream",
    mutating: false,
    handle: async (r, c) => {
      const diff = await compute(r, c);
      return rangeBatches(diff.ranges, { chunkSizeBytes: diff.chunkSizeBytes, changedBytes: diff.changedBytes });
    },
  };
}

/** Every RPC of esan.v1.SanService, by method name. */
export const SAN_RPCS: Readonly<Record<string, UnaryRpc | StreamRpc>> = {
  GetSanInfo: unary(false, (_r, c) => c.info()),
  CreateVolumeGroup: unary(true, (r, c) => c.createVolumeGroup(text(r, "name"))),
  ListVolumeGroups: unary(false, async (_r, c) => ({ volumeGroups: await c.listVolumeGroups() })),
  DeleteVolumeGroup: unary(true, async (r, c) => (await c.deleteVolumeGroup(text(r, "name")), done)),
  CreateVolume: unary(true, (r, c) => c.createVolume(createVolumeRequest(r))),
  GetVolume: unary(false, (r, c) => c.getVolume(text(r, "id"))),
  ListVolumes: unary(false, (r, c) => c.listVolumes({ ...paging(r), ...withDefined("volumeGroup", optionalText(r, "volumeGroup")) })),
  ResizeVolume: unary(true, (r, c) => c.resizeVolume(text(r, "id"), bytes(r, "sizeBytes"))),
  DeleteVolume: unary(true, async (r, c) => (await c.deleteVolume(text(r, "id")), done)),
  Read: unary(false, async (r, c) => ({ data: await c.read(text(r, "imageId"), bytes(r, "offset"), bytes(r, "length")) })),
  Write: unary(false, async (r, c) => {
    const data = r.data;
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError("The request field data must be bytes.");
    await c.write(text(r, "volumeId"), bytes(r, "offset"), data, { fua: flag(r, "fua") });
    return done;
  }),
  WriteZeroes: unary(false, async (r, c) => {
    await c.writeZeroes(text(r, "volumeId"), bytes(r, "offset"), bytes(r, "length"), { fua: flag(r, "fua"), noHole: flag(r, "noHole") });
    return done;
  }),
  Trim: unary(false, async (r, c) => (await c.trim(text(r, "volumeId"), bytes(r, "offset"), bytes(r, "length"), { fua: flag(r, "fua") }), done)),
  Flush: unary(false, async (_r, c) => (await c.flush(), done)),
  GetAllocatedRanges: { kind: "stream", mutating: false, handle: async (r, c) => rangeBatches(await c.allocatedRanges(text(r, "imageId"))) },
  Diff: diffRpc((r, c) => c.diff(text(r, "baseId"), text(r, "targetId"))),
  CreateSnapshot: unary(true, (r, c) =>
    c.createSnapshot({ volumeGroup: text(r, "volumeGroup"), name: text(r, "name"), sourceVolumeId: text(r, "sourceVolumeId") }),
  ),
  GetSnapshot: unary(false, (r, c) => c.getSnapshot(text(r, "id"))),
  ListSnapshots: unary(false, (r, c) =>
    c.listSnapshots({
      ...paging(r),
      ...withDefined("volumeGroup", optionalText(r, "volumeGroup")),
      ...withDefined("sourceVolumeId", optionalText(r, "sourceVolumeId")),
    }),
  ),
  DeleteSnapshot: unary(true, async (r, c) => (await c.deleteSnapshot(text(r, "id")), done)),
  CreateGroupSnapshot: unary(true, (r, c) => {
    const volumeIds: unknown[] = Array.isArray(r.volumeIds) ? r.volumeIds : [];
    if (!volumeIds.every((id) => typeof id === "string")) throw new InvalidArgumentError("The request field volumeIds must hold strings.");
    return c.createGroupSnapshot({ volumeGroup: text(r, "volumeGroup"), name: text(r, "name"), volumeIds });
  }),
  GetGroupSnapshot: unary(false, (r, c) => c.getGroupSnapshot(text(r, "id"))),
  ListGroupSnapshots: unary(false, (r, c) => c.listGroupSnapshots({ ...paging(r), ...withDefined("volumeGroup", optionalText(r, "volumeGroup")) })),
  DeleteGroupSnapshot: unary(true, async (r, c) => (await c.deleteGroupSnapshot(text(r, "id")), done)),
  Check: unary(false, (_r, c) => c.check()),
  ExportDiskSnapshot: unary(true, (r, c) =>
    c.exportDiskSnapshot({ name: text(r, "name"), sourceId: text(r, "sourceId"), ...withDefined("storeDir", optionalText(r, "storeDir")) }),
  ),
  GetDiskSnapshot: unary(false, (r, c) => c.getDiskSnapshot(text(r, "name"))),
  ListDiskSnapshots: unary(false, async (r, c) => ({ diskSnapshots: await c.listDiskSnapshots(withDefined("sourceId", optionalText(r, "sourceId"))) })),
  DeleteDiskSnapshot: unary(true, async (r, c) => (await c.deleteDiskSnapshot(text(r, "name")), done)),
  WaitForDiskSnapshot: unary(false, (r, c) => c.waitForDiskSnapshot(text(r, "name"))),
  WaitForHydration: unary(false, async (r, c) => (await c.waitForHydration(text(r, "volumeId")), done)),
  DiffDiskSnapshots: diffRpc((r, c) => c.diffDiskSnapshots(text(r, "baseName"), text(r, "targetName"))),
  Attach: unary(true, (r, c) => c.attach(text(r, "volumeId"), text(r, "nodeId"))),
  Detach: unary(true, (r, c) => c.detach(text(r, "volumeId"), text(r, "nodeId"))),
  ListAttachments: unary(false, async (r, c) => ({
    attachments: await c.listAttachments({
      ...withDefined("volumeId", optionalText(r, "volumeId")),
      ...withDefined("nodeId", optionalText(r, "nodeId")),
    }),
  })),
};

/** `{ [key]: value }` when value is defined, else `{}`: keeps absent filters absent. */
function withDefined<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

/** Fields safe to log that name what a request is about; never data, never keys. */
const LOGGED_FIELDS = [
  "id",
  "name",
  "volumeGroup",
  "volumeId",
  "imageId",
  "baseId",
  "targetId",
  "baseName",
  "targetName",
  "sourceId",
  "sourceVolumeId",
  "nodeId",
  "offset",
  "length",
  "sizeBytes",
];

/** What a response adds to the log: the PSK identity an attach issued (so NBD logs can be matched), never its key. */
export function responseSummary(response: unknown): Record<string, unknown> {
  const identity = (response as { pskIdentity?: unknown } | null)?.pskIdentity;
  return typeof identity === "string" ? { pskIdentity: identity } : {};
}

/** The loggable summary of a request: ids, node, offsets and sizes only. */
export function requestSummary(request: WireRequest): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const field of LOGGED_FIELDS) {
    const value = request[field];
    if ((typeof value === "string" && value !== "") || typeof value === "number") summary[field] = value;
  }
  if (request.data instanceof Uint8Array) summary.dataBytes = request.data.byteLength;
  return summary;
}
