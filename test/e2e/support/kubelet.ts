// The e2e tests' kubelet. There is none in the local cluster, so this plays its part for a pod on the one node:
// it creates the Pod (bound to the node, as the scheduler would), lets kube-controller-manager's attach-detach
// controller create the VolumeAttachment and csi-attacher attach it, then calls NodeStageVolume and NodePublishVolume
// on the node plugin's socket with the PV's volume handle, volume context and the attachment's publish context, at
// kubelet's own paths. Unmounting is the reverse: unpublish, unstage, then delete the Pod so the volume is detached.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Cluster } from "../../../src/cluster/cluster.ts";
import { CsiClient } from "../../../src/cluster/csi-client.ts";
import { DRIVER_NAME } from "../../../src/cluster/csi-stack.ts";
import type { KubeObject } from "../../../src/cluster/kube-client.ts";
import { NAMESPACE, paths, quantityBytes, waitUntil, type Pv, type Pvc } from "./kube.ts";

type VolumeAttachment = KubeObject & {
  spec: { attacher: string; nodeName: string; source: { persistentVolumeName?: string } };
  status?: { attached?: boolean; attachmentMetadata?: Record<string, string>; attachError?: { message?: string } };
};

/** A volume mounted for a pod, as kubelet holds it. */
export interface MountedVolume {
  pvc: string;
  pv: Pv;
  pod: string;
  volumeHandle: string;
  capability: Record<string, unknown>;
  volumeContext: Record<string, string>;
  publishContext: Record<string, string>;
  stagingPath: string;
  /** Where the pod sees the filesystem. */
  targetPath: string;
}

/** Plays kubelet on the cluster's one node. */
export class Kubelet {
  readonly #cluster: Cluster;
  readonly #node: CsiClient;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#node = new CsiClient(cluster.csi.nodeEndpoint);
  }

  /** Runs a pod using PVC `pvcName` on the node and mounts its volume; resolves once the pod could use it. */
  async mount(pvcName: string): Promise<MountedVolume> {
    const { admin, nodeName, kubeletDir } = this.#cluster;
    const pvc = await admin.get<Pvc>(paths.pvc(pvcName));
    if (!pvc?.spec.volumeName) throw new Error(`PVC ${pvcName} is not bound, so no pod can mount it.`);
    const pv = (await admin.get<Pv>(paths.pv(pvc.spec.volumeName)))!;
    const pod = `${pvcName}-user`;
    const created = await admin.create(paths.pod(), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod, namespace: NAMESPACE },
      spec: {
        nodeName,
        containers: [{ name: "app", image: "registry.k8s.io/pause:3.10" }],
        volumes: [{ name: "data", persistentVolumeClaim: { claimName: pvcName } }],
      },
    });
    const attachment = await this.#waitForAttachment(pv.metadata.name);
    const volumeHandle = pv.spec.csi.volumeHandle;
    const capability = {
      mount: { fsType: pv.spec.csi.fsType ?? "ext4", mountFlags: [] },
      accessMode: { mode: pv.spec.accessModes.includes("ReadWriteOnce") ? "SINGLE_NODE_WRITER" : "SINGLE_NODE_READER_ONLY" },
    };
    const volumeContext = pv.spec.csi.volumeAttributes ?? {};
    const publishContext = attachment.status?.attachmentMetadata ?? {};
    // kubelet's own layout: one global staging mount per volume, one publication per pod.
    const stagingPath = path.join(kubeletDir, "plugins", "kubernetes.io", "csi", DRIVER_NAME, sha256(volumeHandle), "globalmount");
    const targetPath = path.join(kubeletDir, "pods", created.metadata.uid ?? pod, "volumes", "kubernetes.io~csi", pv.metadata.name, "mount");
    fs.mkdirSync(stagingPath, { recursive: true });
    fs.mkdirSync(path.dirname(targetPath), { recursive: true });
    const mounted: MountedVolume = { pvc: pvcName, pv, pod, volumeHandle, capability, volumeContext, publishContext, stagingPath, targetPath };
    await this.#node.call("Node", "NodeStageVolume", { volumeId: volumeHandle, publishContext, stagingTargetPath: stagingPath, volumeCapability: capability, volumeContext });
    await this.publish(mounted);
    return mounted;
  }

  /** NodePublishVolume at the pod's target path. */
  async publish(volume: MountedVolume): Promise<void> {
    await this.#node.call("Node", "NodePublishVolume", {
      volumeId: volume.volumeHandle,
      publishContext: volume.publishContext,
      stagingTargetPath: volume.stagingPath,
      targetPath: volume.targetPath,
      volumeCapability: volume.capability,
      volumeContext: volume.volumeContext,
    });
  }

  /** NodeUnpublishVolume: the pod no longer sees the volume; it stays staged. */
  async unpublish(volume: MountedVolume): Promise<void> {
    await this.#node.call("Node", "NodeUnpublishVolume", { volumeId: volume.volumeHandle, targetPath: volume.targetPath });
  }

  /**
   * kubelet's offline expansion: with the volume staged but not published, NodeExpandVolume on the staging path to the
   * PV's capacity; then the pod's publication again. Resolves the capacity the node reports.
   */
  async expandOffline(volume: MountedVolume): Promise<number> {
    const pv = (await this.#cluster.admin.get<Pv>(paths.pv(volume.pv.metadata.name)))!;
    await this.unpublish(volume);
    const expanded = await this.#node.call<{ capacityBytes: number }>("Node", "NodeExpandVolume", {
      volumeId: volume.volumeHandle,
      volumePath: volume.stagingPath,
      stagingTargetPath: volume.stagingPath,
      capacityRange: { requiredBytes: quantityBytes(pv.spec.capacity.storage) },
      volumeCapability: volume.capability,
    });
    await this.publish(volume);
    return expanded.capacityBytes;
  }

  /** The pod is gone: unpublish, unstage, delete the Pod, and wait until the attach-detach controller detached the volume. */
  async unmount(volume: MountedVolume): Promise<void> {
    await this.unpublish(volume);
    await this.#node.call("Node", "NodeUnstageVolume", { volumeId: volume.volumeHandle, stagingTargetPath: volume.stagingPath });
    await this.#cluster.admin.delete(paths.pod(volume.pod), { gracePeriodSeconds: 0 });
    await waitUntil(
      () => this.#attachmentOf(volume.pv.metadata.name),
      (attachment) => attachment === undefined,
      180_000,
      (attachment) => `The VolumeAttachment of ${volume.pv.metadata.name} is still there 180 s after its pod was deleted: ${JSON.stringify(attachment?.status ?? null)}`,
    );
  }

  close(): void {
    this.#node.close();
  }

  async #attachmentOf(pvName: string): Promise<VolumeAttachment | undefined> {
    const attachments = await this.#cluster.admin.list<VolumeAttachment>(paths.volumeAttachment());
    return attachments.find((a) => a.spec.source.persistentVolumeName === pvName && a.spec.nodeName === this.#cluster.nodeName);
  }

  async #waitForAttachment(pvName: string): Promise<VolumeAttachment> {
    const attachment = await waitUntil(
      () => this.#attachmentOf(pvName),
      (a) => a?.status?.attached === true,
      180_000,
      (a) =>
        a
          ? `The VolumeAttachment of ${pvName} is not attached after 180 s: ${a.status?.attachError?.message ?? "no error reported"}.`
          : `No VolumeAttachment of ${pvName} appeared within 180 s of its pod: the attach-detach controller did not create one.`,
    );
    return attachment!;
  }
}

function sha256(text: string): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}
