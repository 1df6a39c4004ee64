// GrpcSanClient: the SanClient over the SAN API. Each method is one RPC; a refusal comes back as the very EsanError
// subclass, with the very sentence, that the service's engine threw.
import { ChannelCredentials, Metadata, type Client, type MethodDefinition, type ServiceDefinition, type ServiceError } from "@grpc/grpc-js";
import type { ExportRequest } from "../storage/durable/tier.ts";
import type { CreateVolumeRequest, DiffResult, ListOptions, ListPage, WriteOptions, ZeroOptions } from "../storage/types.ts";
import { formatEndpoint, grpcTarget, parseEndpoint, type Endpoint } from "./endpoints.ts";
import { checkIoLength } from "./local-san-client.ts";
import {
  attachmentInfoFromWire,
  checkReportFromWire,
  credentialFromWire,
  diskSnapshotFromWire,
  groupSnapshotFromWire,
  rangesFromWire,
  sanInfoFromWire,
  snapshotFromWire,
  volumeFromWire,
  volumeGroupFromWire,
  type WireDiskSnapshot,
  type WirePage,
  type WireSanInfo,
  type WireSnapshot,
  type WireVolume,
} from "./messages.ts";
import { CHANNEL_OPTIONS, sanServiceClient } from "./proto.ts";
import type {
  AttachmentCredential,
  AttachmentFilter,
  AttachmentInfo,
  CreateGroupSnapshotRequest,
  CreateSnapshotRequest,
  DetachResult,
  SanClient,
} from "./san-client.ts";
import { fromStatus } from "./status.ts";
import type { ByteRange, CheckReport, GroupSnapshotInfo, VolumeGroupInfo } from "../storage/types.ts";

/** Options of GrpcSanClient.connect. */
export interface GrpcSanClientOptions {
  /** Bearer token sent with every call; a TCP listener without mutual TLS requires it (default: none). */
  token?: string;
  /** TLS for a TCP endpoint: `ca` verifies the server, `cert` and `key` are the client certificate for mutual TLS (default: plaintext). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

type Wire = Record<string, unknown>;

/** A SanClient that talks to `esan san serve` over gRPC. */
export class GrpcSanClient implements SanClient {
  /** Where it connects, as a URL. */
  readonly address: string;
  readonly #client: Client;
  readonly #token: string | undefined;
  readonly #methods: ServiceDefinition;

  private constructor(endpoint: Endpoint, options: GrpcSanClientOptions) {
    this.address = formatEndpoint(endpoint);
    const Service = sanServiceClient();
    const tls = options.tls;
    const credentials =
      endpoint.kind === "tcp" && tls
        ? ChannelCredentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null)
        : ChannelCredentials.createInsecure();
    this.#client = new Service(grpcTarget(endpoint), credentials, CHANNEL_OPTIONS);
    this.#methods = Service.service;
    this.#token = options.token;
  }

  /** A client for `unix:///PATH` or `tcp://HOST:PORT`; connects lazily, on the first call. */
  static connect(address: string, options: GrpcSanClientOptions = {}): GrpcSanClient {
    return new GrpcSanClient(parseEndpoint(address, "--san"), options);
  }

  async info() {
    return sanInfoFromWire(await this.#call<WireSanInfo>("GetSanInfo", {}));
  }

  async createVolumeGroup(name: string) {
    return volumeGroupFromWire(await this.#call<VolumeGroupInfo>("CreateVolumeGroup", { name }));
  }

  async listVolumeGroups() {
    const response = await this.#call<{ volumeGroups: VolumeGroupInfo[] }>("ListVolumeGroups", {});
    return response.volumeGroups.map(volumeGroupFromWire);
  }

  async deleteVolumeGroup(name: string) {
    await this.#call("DeleteVolumeGroup", { name });
  }

  async createVolume(request: CreateVolumeRequest) {
    return volumeFromWire(await this.#call<WireVolume>("CreateVolume", { ...request }));
  }

  async getVolume(id: string) {
    return volumeFromWire(await this.#call<WireVolume>("GetVolume", { id }));
  }

  async listVolumes(options: ListOptions & { volumeGroup?: string } = {}): Promise<ListPage<ReturnType<typeof volumeFromWire>>> {
    const page = await this.#call<WirePage<WireVolume>>("ListVolumes", { ...options });
    return { entries: page.entries.map(volumeFromWire), nextToken: page.nextToken };
  }

  async resizeVolume(id: string, sizeBytes: number) {
    return volumeFromWire(await this.#call<WireVolume>("ResizeVolume", { id, sizeBytes }));
  }

  async deleteVolume(id: string) {
    await this.#call("DeleteVolume", { id });
  }

  async read(imageId: string, offset: number, length: number) {
    checkIoLength("read", imageId, length);
    const response = await this.#call<{ data: Buffer }>("Read", { imageId, offset, length });
    return response.data;
  }

  async write(volumeId: string, offset: number, data: Uint8Array, options: WriteOptions = {}) {
    checkIoLength("write", volumeId, data.byteLength);
    await this.#call("Write", { volumeId, offset, data, fua: options.fua === true });
  }

  async writeZeroes(volumeId: string, offset: number, length: number, options: ZeroOptions = {}) {
    await this.#call("WriteZeroes", { volumeId, offset, length, fua: options.fua === true, noHole: options.noHole === true });
  }

  async trim(volumeId: string, offset: number, length: number, options: WriteOptions = {}) {
    await this.#call("Trim", { volumeId, offset, length, fua: options.fua === true });
  }

  async flush() {
    await this.#call("Flush", {});
  }

  async allocatedRanges(imageId: string) {
    const batches = await this.#stream<{ ranges: ByteRange[] }>("GetAllocatedRanges", { imageId });
    return batches.flatMap((batch) => rangesFromWire(batch.ranges));
  }

  async diff(baseId: string, targetId: string): Promise<DiffResult> {
    return this.#diff("Diff", { baseId, targetId });
  }

  async createSnapshot(request: CreateSnapshotRequest) {
    return snapshotFromWire(await this.#call<WireSnapshot>("CreateSnapshot", { ...request }));
  }

  async getSnapshot(id: string) {
    return snapshotFromWire(await this.#call<WireSnapshot>("GetSnapshot", { id }));
  }

  async listSnapshots(options: ListOptions & { volumeGroup?: string; sourceVolumeId?: string } = {}) {
    const page = await this.#call<WirePage<WireSnapshot>>("ListSnapshots", { ...options });
    return { entries: page.entries.map(snapshotFromWire), nextToken: page.nextToken };
  }

  async deleteSnapshot(id: string) {
    await this.#call("DeleteSnapshot", { id });
  }

  async createGroupSnapshot(request: CreateGroupSnapshotRequest) {
    return groupSnapshotFromWire(await this.#call<GroupSnapshotInfo>("CreateGroupSnapshot", { ...request }));
  }

  async getGroupSnapshot(id: string) {
    return groupSnapshotFromWire(await this.#call<GroupSnapshotInfo>("GetGroupSnapshot", { id }));
  }

  async listGroupSnapshots(options: ListOptions & { volumeGroup?: string } = {}) {
    const page = await this.#call<WirePage<GroupSnapshotInfo>>("ListGroupSnapshots", { ...options });
    return { entries: page.entries.map(groupSnapshotFromWire), nextToken: page.nextToken };
  }

  async deleteGroupSnapshot(id: string) {
    await this.#call("DeleteGroupSnapshot", { id });
  }

  async check() {
    return checkReportFromWire(await this.#call<CheckReport>("Check", {}));
  }

  async exportDiskSnapshot(request: ExportRequest) {
    return diskSnapshotFromWire(await this.#call<WireDiskSnapshot>("ExportDiskSnapshot", { ...request }));
  }

  async waitForDiskSnapshot(name: string) {
    return diskSnapshotFromWire(await this.#call<WireDiskSnapshot>("WaitForDiskSnapshot", { name }));
  }

  async getDiskSnapshot(name: string) {
    return diskSnapshotFromWire(await this.#call<WireDiskSnapshot>("GetDiskSnapshot", { name }));
  }

  async listDiskSnapshots(options: { sourceId?: string } = {}) {
    const response = await this.#call<{ diskSnapshots: WireDiskSnapshot[] }>("ListDiskSnapshots", { ...options });
    return response.diskSnapshots.map(diskSnapshotFromWire);
  }

  async deleteDiskSnapshot(name: string) {
    await this.#call("DeleteDiskSnapshot", { name });
  }

  async waitForHydration(volumeId: string) {
    await this.#call("WaitForHydration", { volumeId });
  }

  async diffDiskSnapshots(baseName: string, targetName: string): Promise<DiffResult> {
    return this.#diff("DiffDiskSnapshots", { baseName, targetName });
  }

  async attach(volumeId: string, nodeId: string): Promise<AttachmentCredential> {
    return credentialFromWire(await this.#call<AttachmentCredential>("Attach", { volumeId, nodeId }));
  }

  async detach(volumeId: string, nodeId: string): Promise<DetachResult> {
    const response = await this.#call<DetachResult>("Detach", { volumeId, nodeId });
    return { detached: response.detached };
  }

  async listAttachments(filter: AttachmentFilter = {}): Promise<AttachmentInfo[]> {
    const response = await this.#call<{ attachments: AttachmentInfo[] }>("ListAttachments", { ...filter });
    return response.attachments.map(attachmentInfoFromWire);
  }

  /** Closes the channel; calls still running fail. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }

  #metadata(): Metadata {
    const metadata = new Metadata();
    if (this.#token !== undefined) metadata.set("authorization", `Bearer ${this.#token}`);
    return metadata;
  }

  #method(name: string): MethodDefinition<Wire, unknown> {
    const method: MethodDefinition<Wire, unknown> | undefined = this.#methods[name];
    if (!method) throw new Error(`esan.v1.SanService has no method ${name}.`);
    return method;
  }

  /** One unary call; a failure becomes the EsanError (or SanApiError) it stands for. */
  #call<T = unknown>(name: string, request: Wire): Promise<T> {
    const method = this.#method(name);
    return new Promise<T>((resolve, reject) => {
      this.#client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, this.#metadata(), (err, value) => {
        if (err) reject(fromStatus(err, this.address));
        else resolve(value as T);
      });
    });
  }

  /** A streamed diff, reassembled: every batch repeats the totals. */
  async #diff(name: string, request: Wire): Promise<DiffResult> {
    const batches = await this.#stream<{ chunkSizeBytes: number; changedBytes: number; ranges: ByteRange[] }>(name, request);
    return {
      chunkSizeBytes: batches[0]?.chunkSizeBytes ?? 0,
      changedBytes: batches[0]?.changedBytes ?? 0,
      ranges: batches.flatMap((batch) => rangesFromWire(batch.ranges)),
    };
  }

  /** One server-streaming call, collected. */
  #stream<T>(name: string, request: Wire): Promise<T[]> {
    const method = this.#method(name);
    return new Promise<T[]>((resolve, reject) => {
      const messages: T[] = [];
      const call = this.#client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, this.#metadata());
      call.on("data", (message: T) => messages.push(message));
      call.on("error", (err: ServiceError) => reject(fromStatus(err, this.address)));
      call.on("end", () => resolve(messages));
    });
  }
}
