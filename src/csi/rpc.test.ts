// The handler wrapper over a real grpc-js server and client on a unix socket: locks, error mapping, metrics, logging.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { credentials, Server, ServerCredentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CsiError } from "./errors.ts";
import { CsiMetrics } from "./metrics.ts";
import { csiServiceClient, csiServiceDefinition } from "./proto.ts";
import { RpcWrapper, unary, type CsiMethods } from "./rpc.ts";

interface Harness {
  call: (method: string, request: Record<string, unknown>) => Promise<unknown>;
  logLines: () => Record<string, unknown>[];
  metrics: CsiMetrics;
}

let server: Server;
let client: Client;
let dir: string;

async function start(methods: CsiMethods): Promise<Harness> {
  dir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "esan-rpc-"));
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) });
  const logger = pino({ level: "debug" }, sink);
  const metrics = new CsiMetrics();
  const wrapper = new RpcWrapper({ logger, metrics });
  server = new Server();
  server.addService(csiServiceDefinition("Controller"), wrapper.implementation("Controller", csiServiceDefinition("Controller"), methods));
  const socket = `unix://${dir}/csi.sock`;
  await new Promise<void>((resolve, reject) => server.bindAsync(socket, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const Controller = csiServiceClient("Controller");
  client = new Controller(socket, credentials.createInsecure());
  const call = (method: string, request: Record<string, unknown>): Promise<unknown> =>
    new Promise((resolve, reject) => {
      (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, v: unknown) => void) => void>)[method]!.call(client, request, (err, value) =>
        err ? reject(err) : resolve(value),
      );
    });
  return { call, logLines: () => lines.flatMap((l) => l.split("\n").filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>), metrics };
}

beforeEach(() => {
  dir = "";
});

afterEach(async () => {
  client?.close();
  await new Promise<void>((resolve) => server?.tryShutdown(() => resolve()));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("RpcWrapper", () => {
  it("refuses a call on a volume another call holds with ABORTED, and lets other volumes through", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const holding = new Promise<void>((resolve) => (entered = resolve));
    const h = await start({
      DeleteVolume: unary<{ volumeId: string }>({
        lockKeys: (r) => [`volume:${r.volumeId}`],
        handle: async (r) => {
          if (r.volumeId === "vg/slow") {
            entered();
            await gate;
          }
          return {};
        },
      }),
    });
    const slow = h.call("DeleteVolume", { volumeId: "vg/slow" });
    await holding;
    const conflict = await h.call("DeleteVolume", { volumeId: "vg/slow" }).catch((err: ServiceError) => err);
    expect((conflict as ServiceError).code).toBe(status.ABORTED);
    expect((conflict as ServiceError).details).toBe("Cannot run DeleteVolume now: another call on vg/slow is in progress. Retry when it completes.");
    await expect(h.call("DeleteVolume", { volumeId: "vg/other" })).resolves.toEqual({});
    release();
    await expect(slow).resolves.toEqual({});
    // Released: the same volume is free again.
    await expect(h.call("DeleteVolume", { volumeId: "vg/slow" })).resolves.toEqual({});
  });

  it("answers a bug with INTERNAL and a generic sentence, and logs the stack only", async () => {
    const h = await start({
      DeleteVolume: unary({
        handle: () => {
          throw new TypeError("cannot read properties of undefined (secret internals)");
        },
      }),
    });
    const failure = (await h.call("DeleteVolume", { volumeId: "vg/x" }).catch((err: ServiceError) => err)) as ServiceError;
    expect(failure.code).toBe(status.INTERNAL);
    expect(failure.details).toMatch(/^The esan CSI driver failed unexpectedly while handling request c\d+; its log has the details\.$/);
    expect(failure.details).not.toContain("internals");
    const logged = h.logLines().find((line) => line.msg === "failed unexpectedly");
    expect(JSON.stringify(logged)).toContain("secret internals");
  });

  it("runs the validation hook first and passes a CsiError through with its code and sentence", async () => {
    let handled = false;
    const h = await start({
      DeleteVolume: unary<{ volumeId: string }>({
        validate: (r) => {
          if (r.volumeId === "") throw new CsiError(status.INVALID_ARGUMENT, "The request field volume_id is required.");
        },
        handle: () => {
          handled = true;
          return Promise.resolve({});
        },
      }),
    });
    const failure = (await h.call("DeleteVolume", {}).catch((err: ServiceError) => err)) as ServiceError;
    expect([failure.code, failure.details]).toEqual([status.INVALID_ARGUMENT, "The request field volume_id is required."]);
    expect(handled).toBe(false);
  });

  it("answers UNIMPLEMENTED, with a sentence, for a method it has no handler for", async () => {
    const h = await start({});
    const failure = (await h.call("ControllerModifyVolume", { volumeId: "vg/x" }).catch((err: ServiceError) => err)) as ServiceError;
    expect(failure.code).toBe(status.UNIMPLEMENTED);
    expect(failure.details).toBe("esan does not implement Controller.ControllerModifyVolume; its capabilities do not advertise it.");
  });

  it("records each call's duration by method and gRPC code", async () => {
    const h = await start({ DeleteVolume: unary({ handle: () => Promise.resolve({}) }) });
    await h.call("DeleteVolume", { volumeId: "vg/a" });
    await h.call("ControllerModifyVolume", {}).catch(() => undefined);
    const text = await h.metrics.text();
    expect(text).toContain('esan_csi_operations_seconds_count{method="DeleteVolume",grpc_code="OK"} 1');
    expect(text).toContain('esan_csi_operations_seconds_count{method="ControllerModifyVolume",grpc_code="UNIMPLEMENTED"} 1');
  });

  it("never logs secrets, mount flags or PSK keys, in requests or responses", async () => {
    const key = "5e".repeat(32);
    const h = await start({
      ControllerPublishVolume: unary({ mutating: true, handle: () => Promise.resolve({ publishContext: { "esan.csi.dev/psk-key": key, "esan.csi.dev/export-name": "vg/a" } }) }),
    });
    await h.call("ControllerPublishVolume", {
      volumeId: "vg/a",
      nodeId: "n1",
      secrets: { password: "hunter2-secret" },
      volumeCapability: { mount: { fsType: "ext4", mountFlags: ["password=hunter2-secret"] }, accessMode: { mode: "SINGLE_NODE_WRITER" } },
    });
    const log = JSON.stringify(h.logLines());
    expect(log).toContain("vg/a");
    expect(log).toContain("[redacted]");
    expect(log).not.toContain("hunter2-secret");
    expect(log).not.toContain(key);
  });
});
