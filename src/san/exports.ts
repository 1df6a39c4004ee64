// The NBD exports of a SAN service, with authorization: a TLS-PSK identity sees and opens exactly the one volume it was
// attached to; a plain unix-socket peer (when allowed) sees every volume read-write and every snapshot read-only.
import { NbdError, type NbdBackend, type NbdExportInfo, type NbdExportProvider, type NbdPeer } from "../nbd/backend.ts";
import type { San } from "../storage/san.ts";
import type { AttachmentRecord, AttachmentStore } from "./attachments.ts";
import { imageGeometry, VolumeBackend } from "./volume-backend.ts";

/** Options of SanExports. */
export interface SanExportsOptions {
  san: San;
  attachments: AttachmentStore;
  /** Serve peers without a PSK identity on unix sockets (local tools); default false: they see and open nothing. */
  allowPlainUnix?: boolean;
}

/** The NbdExportProvider of `esan san serve`. Every decision reads the attachments afresh, so a detach applies at once. */
export class SanExports implements NbdExportProvider {
  readonly #san: San;
  readonly #attachments: AttachmentStore;
  readonly #allowPlainUnix: boolean;

  constructor(options: SanExportsOptions) {
    this.#san = options.san;
    this.#attachments = options.attachments;
    this.#allowPlainUnix = options.allowPlainUnix ?? false;
  }

  /** What `peer` may see: its attached volume, everything (plain unix peers when allowed), or nothing. */
  list(peer: NbdPeer): NbdExportInfo[] {
    if (peer.pskIdentity !== null) {
      const record = this.#attachments.byIdentity(peer.pskIdentity);
      return record && this.#stillAttached(record) ? [{ name: record.volumeId, description: "volume" }] : [];
    }
    if (!this.#plainAllowed(peer)) return [];
    const volumes = this.#san.listVolumes().entries.map((v) => ({ name: v.id, description: "volume" }));
    const snapshots = this.#san.listSnapshots().entries.map((s) => ({ name: s.id, description: "snapshot (read-only)" }));
    return [...volumes, ...snapshots].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Opens `name` for `peer`, or throws EPERM (not allowed) or ENOENT (no such image, for a peer that may see all). */
  open(name: string, peer: NbdPeer): NbdBackend {
    if (peer.pskIdentity !== null) {
      const record = this.#attachments.byIdentity(peer.pskIdentity);
      if (!record) throw new NbdError("EPERM", `The PSK identity ${peer.pskIdentity} is not attached to any volume (it was revoked).`);
      if (name !== record.volumeId) {
        throw new NbdError("EPERM", `The PSK identity ${peer.pskIdentity} may open only ${record.volumeId}, not ${name}.`);
      }
      const geometry = imageGeometry(this.#san, name);
      if (geometry.kind !== "volume" || geometry.uniqueId !== record.volumeUniqueId) {
        throw new NbdError("EPERM", `The PSK identity ${peer.pskIdentity} was issued for an earlier volume named ${name}; attach again.`);
      }
      return new VolumeBackend(this.#san, geometry);
    }
    if (!this.#plainAllowed(peer)) {
      throw new NbdError("EPERM", `Opening ${name} needs a TLS-PSK identity on this ${peer.transport} listener; attach the volume to get one.`);
    }
    return VolumeBackend.open(this.#san, name);
  }

  /** The key of a live attachment, or null (unknown or revoked identity: the TLS handshake fails). */
  pskKey(identity: string): Buffer | null {
    return this.#attachments.byIdentity(identity)?.pskKey ?? null;
  }

  #plainAllowed(peer: NbdPeer): boolean {
    return this.#allowPlainUnix && peer.transport === "unix";
  }

  /** True while the attached volume is the very one the credential was issued for. */
  #stillAttached(record: AttachmentRecord): boolean {
    try {
      return this.#san.getVolume(record.volumeId).uniqueId === record.volumeUniqueId;
    } catch {
      return false;
    }
  }
}
