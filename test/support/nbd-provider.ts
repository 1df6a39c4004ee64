// A test NbdExportProvider over a San: every volume and snapshot by id, plain on unix, PSK grants from a static map.
import { NbdError, type NbdBackend, type NbdExportInfo, type NbdExportProvider, type NbdPeer } from "../../src/nbd/backend.ts";
import { VolumeBackend } from "../../src/san/volume-backend.ts";
import type { San } from "../../src/storage/san.ts";

/** What one PSK identity may do: its key, and the exports it may list and open ("*" for all). */
export interface PskGrant {
  key: Buffer;
  exports: string[] | "*";
}

/** Options of SanTestProvider. */
export interface SanTestProviderOptions {
  /** identity → grant. */
  grants?: Record<string, PskGrant>;
  /** Plain (non-TLS) unix connections may open every export. Default true. */
  plainUnix?: boolean;
}

/** Exports every image of a San as `VG/NAME`; the authorization rules mirror what the SAN service will do. */
export class SanTestProvider implements NbdExportProvider {
  readonly #san: San;
  readonly #grants: Map<string, PskGrant>;
  readonly #plainUnix: boolean;
  /** Backends currently open, to check that connections release them. */
  openBackends = 0;

  constructor(san: San, options: SanTestProviderOptions = {}) {
    this.#san = san;
    this.#grants = new Map(Object.entries(options.grants ?? {}));
    this.#plainUnix = options.plainUnix ?? true;
  }

  /** Adds or replaces a grant. */
  grant(identity: string, grant: PskGrant): void {
    this.#grants.set(identity, grant);
  }

  /** Removes a grant: its key stops working for new handshakes. */
  revoke(identity: string): void {
    this.#grants.delete(identity);
  }

  list(peer: NbdPeer): NbdExportInfo[] {
    const ids = [
      ...this.#san.listVolumes().entries.map((v) => ({ name: v.id, description: `volume ${v.id}` })),
      ...this.#san.listSnapshots().entries.map((s) => ({ name: s.id, description: `snapshot ${s.id} of ${s.sourceId}` })),
    ];
    return ids.filter((entry) => this.#allowed(entry.name, peer));
  }

  open(name: string, peer: NbdPeer): NbdBackend {
    if (!this.#allowed(name, peer)) throw new NbdError("EPERM", `Export ${name} is not granted to this client.`);
    const backend: NbdBackend = VolumeBackend.open(this.#san, name);
    this.openBackends++;
    // VolumeBackend holds nothing to release; the core's close call is counted here.
    backend.close = () => {
      this.openBackends--;
    };
    return backend;
  }

  pskKey(identity: string): Buffer | null {
    return this.#grants.get(identity)?.key ?? null;
  }

  #allowed(name: string, peer: NbdPeer): boolean {
    if (peer.pskIdentity === null) return peer.transport === "unix" && this.#plainUnix;
    const grant = this.#grants.get(peer.pskIdentity);
    return grant !== undefined && (grant.exports === "*" || grant.exports.includes(name));
  }
}
