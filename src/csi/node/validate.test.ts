// Table test of Node request validation: each bad request gets the spec's code and a sentence; good ones decode.
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CsiError } from "../errors.ts";
import { encodePublishContext, PUBLISH_CONTEXT_KEYS } from "../publish-context.ts";
import { validateExpand, validatePublish, validateStage, validateStats, validateUnpublish, validateUnstage } from "./validate.ts";
import type { VolumeCapability } from "./types.ts";

const KEY = "ab".repeat(32);
const context = encodePublishContext({
  nbdAddress: "unix:///run/esan/nbd.sock",
  nbdUri: "nbds+unix://esan-n1-00ff@/vg%2Fv?socket=/run/esan/nbd.sock",
  exportName: "vg/v",
  pskIdentity: "esan-n1-00ff",
  pskKey: KEY,
});
const mount = (fsType = "ext4", mode = "SINGLE_NODE_WRITER", mountFlags: string[] = []): VolumeCapability => ({ mount: { fsType, mountFlags }, accessMode: { mode }, accessType: "mount" });
const stage = { volumeId: "vg/v", publishContext: context, stagingTargetPath: "/var/lib/kubelet/staging/v", volumeCapability: mount() };

function refusal(run: () => unknown): { code: status; message: string } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CsiError);
    return { code: (error as CsiError).code, message: (error as CsiError).message };
  }
  throw new Error("expected a refusal");
}

describe("NodeStageVolume validation", () => {
  it.each([
    ["no volume id", { ...stage, volumeId: "" }, status.INVALID_ARGUMENT, /needs volume_id/],
    ["oversize volume id", { ...stage, volumeId: "v".repeat(2000) }, status.INVALID_ARGUMENT, /at most 1024 bytes/],
    ["no staging path", { ...stage, stagingTargetPath: "" }, status.INVALID_ARGUMENT, /needs staging_target_path/],
    ["relative staging path", { ...stage, stagingTargetPath: "staging" }, status.INVALID_ARGUMENT, /absolute path/],
    ["no capability", { ...stage, volumeCapability: null }, status.INVALID_ARGUMENT, /needs volume_capability/],
    ["unknown access mode", { ...stage, volumeCapability: mount("ext4", "UNKNOWN") }, status.INVALID_ARGUMENT, /access_mode/],
    ["made-up access mode", { ...stage, volumeCapability: mount("ext4", "EVERYONE") }, status.INVALID_ARGUMENT, /not a CSI access mode/],
    ["no access type", { ...stage, volumeCapability: { accessMode: { mode: "SINGLE_NODE_WRITER" } } }, status.INVALID_ARGUMENT, /mount or volume_capability.block/],
    ["unsupported fs type", { ...stage, volumeCapability: mount("btrfs") }, status.INVALID_ARGUMENT, /ext4 and xfs only/],
    ["two writing nodes on a filesystem", { ...stage, volumeCapability: mount("ext4", "MULTI_NODE_MULTI_WRITER") }, status.FAILED_PRECONDITION, /not cluster filesystems/],
    ["a mount flag with a space", { ...stage, volumeCapability: mount("ext4", "SINGLE_NODE_WRITER", ["no atime"]) }, status.INVALID_ARGUMENT, /one non-empty word/],
    ["a bind flag", { ...stage, volumeCapability: mount("ext4", "SINGLE_NODE_WRITER", ["bind"]) }, status.INVALID_ARGUMENT, /changes how the plugin mounts/],
    ["no publish context", { ...stage, publishContext: {} }, status.INVALID_ARGUMENT, /esan.csi.dev\/nbd-address.*missing.*ControllerPublishVolume/],
    ["a malformed key", { ...stage, publishContext: { ...context, [PUBLISH_CONTEXT_KEYS.pskKey]: "zz" } }, status.INVALID_ARGUMENT, /64 hex digits/],
    ["a plaintext URI", { ...stage, publishContext: { ...context, [PUBLISH_CONTEXT_KEYS.nbdUri]: "nbd+unix:///vg%2Fv?socket=/s" } }, status.INVALID_ARGUMENT, /only with TLS/],
  ])("refuses %s", (_name, request, code, message) => {
    const refused = refusal(() => validateStage(request));
    expect(refused.code).toBe(code);
    expect(refused.message).toMatch(message);
    expect(refused.message).not.toContain(KEY);
  });

  it("decodes a good request, with reader-only modes read-only", () => {
    expect(validateStage({ ...stage, stagingTargetPath: "/var/lib/kubelet/staging/v/" })).toMatchObject({
      volumeId: "vg/v",
      stagingTargetPath: "/var/lib/kubelet/staging/v",
      access: { kind: "mount", fsType: "ext4", mountFlags: [] },
      readOnly: false,
      connection: { exportName: "vg/v", pskIdentity: "esan-n1-00ff", pskKey: KEY },
    });
    expect(validateStage({ ...stage, volumeCapability: { block: {}, accessMode: { mode: "MULTI_NODE_READER_ONLY" }, accessType: "block" } })).toMatchObject({ access: { kind: "block" }, readOnly: true });
    expect(validateStage({ ...stage, volumeCapability: mount("") }).access).toEqual({ kind: "mount", fsType: "", mountFlags: [] });
  });
});

describe("other Node requests", () => {
  const publish = { volumeId: "vg/v", stagingTargetPath: "/s", targetPath: "/t", volumeCapability: mount() };
  it.each([
    ["publish without volume id", () => validatePublish({ ...publish, volumeId: undefined }), status.INVALID_ARGUMENT],
    ["publish without target", () => validatePublish({ ...publish, targetPath: "" }), status.INVALID_ARGUMENT],
    ["publish without capability", () => validatePublish({ ...publish, volumeCapability: undefined }), status.INVALID_ARGUMENT],
    ["publish without staging path", () => validatePublish({ ...publish, stagingTargetPath: "" }), status.FAILED_PRECONDITION],
    ["publish onto the staging path", () => validatePublish({ ...publish, targetPath: "/s" }), status.INVALID_ARGUMENT],
    ["unpublish without volume id", () => validateUnpublish({ targetPath: "/t" }), status.INVALID_ARGUMENT],
    ["unpublish without target", () => validateUnpublish({ volumeId: "vg/v" }), status.INVALID_ARGUMENT],
    ["unstage without volume id", () => validateUnstage({ stagingTargetPath: "/s" }), status.INVALID_ARGUMENT],
    ["unstage without staging path", () => validateUnstage({ volumeId: "vg/v" }), status.INVALID_ARGUMENT],
    ["stats without volume id", () => validateStats({ volumePath: "some/path" }), status.INVALID_ARGUMENT],
    ["stats without path", () => validateStats({ volumeId: "vg/v" }), status.INVALID_ARGUMENT],
    ["expand without path", () => validateExpand({ volumeId: "vg/v" }), status.INVALID_ARGUMENT],
    ["expand with required above limit", () => validateExpand({ volumeId: "vg/v", volumePath: "/t", capacityRange: { requiredBytes: 10, limitBytes: 5 } }), status.INVALID_ARGUMENT],
    ["expand with a negative size", () => validateExpand({ volumeId: "vg/v", volumePath: "/t", capacityRange: { requiredBytes: -1 } }), status.INVALID_ARGUMENT],
  ])("refuses %s", (_name, run, code) => {
    const refused = refusal(run);
    expect(refused.code).toBe(code);
    expect(refused.message).toMatch(/\.$/);
  });

  it("lets a relative stats or expand path through, for the handler to report NOT_FOUND", () => {
    expect(validateStats({ volumeId: "vg/v", volumePath: "some/path" })).toEqual({ volumeId: "vg/v", volumePath: "some/path" });
    expect(validateExpand({ volumeId: "vg/v", volumePath: "some/path" })).toEqual({ volumeId: "vg/v", volumePath: "some/path", requiredBytes: 0, limitBytes: 0 });
  });

  it("makes a publish read-only when asked or when the mode is reader-only", () => {
    expect(validatePublish({ ...publish, readonly: true }).readOnly).toBe(true);
    expect(validatePublish({ ...publish, volumeCapability: mount("ext4", "SINGLE_NODE_READER_ONLY") }).readOnly).toBe(true);
    expect(validatePublish(publish).readOnly).toBe(false);
  });
});
