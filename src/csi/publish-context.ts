// The publish_context keys ControllerPublishVolume fills and NodeStageVolume reads: everything a node needs to open one
// volume on the SAN's NBD endpoint. Both sides import these names, so they cannot drift apart.

/**
 * Keys of the CSI `publish_context` map. Values are strings (CSI maps are string to string):
 * - `nbdAddress`: where to connect, as the SAN hands it out: `tcp://HOST:PORT` or `unix:///PATH`;
 * - `nbdUri`: the same as a libnbd URI with the export name, TLS-PSK identity and TLS on
 *   (`nbds://IDENTITY@HOST:PORT/EXPORT` or `nbds+unix://IDENTITY@/EXPORT?socket=PATH`); add the key file with withPskFile;
 * - `exportName`: the NBD export name to ask for (the volume id, `VG/NAME`);
 * - `pskIdentity`: the TLS-PSK identity of this attachment (`esan-<node>-<hex>`);
 * - `pskKey`: the 32-byte pre-shared key as 64 hex digits. SECRET: never log it (REDACTED_PUBLISH_CONTEXT_KEYS).
 */
export const PUBLISH_CONTEXT_KEYS = {
  nbdAddress: "esan.csi.dev/nbd-address",
  nbdUri: "esan.csi.dev/nbd-uri",
  exportName: "esan.csi.dev/export-name",
  pskIdentity: "esan.csi.dev/psk-identity",
  pskKey: "esan.csi.dev/psk-key",
} as const;

/** publish_context keys whose values are secret: logs show them as "[redacted]". */
export const REDACTED_PUBLISH_CONTEXT_KEYS: readonly string[] = [PUBLISH_CONTEXT_KEYS.pskKey];

/** What ControllerPublishVolume returns, decoded: one attachment's connection details. */
export interface NbdPublishContext {
  nbdAddress: string;
  nbdUri: string;
  exportName: string;
  pskIdentity: string;
  pskKey: string;
}

/** The publish_context map for one attachment. */
export function encodePublishContext(context: NbdPublishContext): Record<string, string> {
  return {
    [PUBLISH_CONTEXT_KEYS.nbdAddress]: context.nbdAddress,
    [PUBLISH_CONTEXT_KEYS.nbdUri]: context.nbdUri,
    [PUBLISH_CONTEXT_KEYS.exportName]: context.exportName,
    [PUBLISH_CONTEXT_KEYS.pskIdentity]: context.pskIdentity,
    [PUBLISH_CONTEXT_KEYS.pskKey]: context.pskKey,
  };
}

/**
 * Reads a publish_context map back; returns the names of the keys that are missing or empty instead when any is, so
 * the caller can refuse with a sentence naming them.
 */
export function decodePublishContext(map: Record<string, string> | undefined): NbdPublishContext | { missing: string[] } {
  const source = map ?? {};
  const missing = Object.values(PUBLISH_CONTEXT_KEYS).filter((key) => !source[key]);
  if (missing.length > 0) return { missing };
  return {
    nbdAddress: source[PUBLISH_CONTEXT_KEYS.nbdAddress]!,
    nbdUri: source[PUBLISH_CONTEXT_KEYS.nbdUri]!,
    exportName: source[PUBLISH_CONTEXT_KEYS.exportName]!,
    pskIdentity: source[PUBLISH_CONTEXT_KEYS.pskIdentity]!,
    pskKey: source[PUBLISH_CONTEXT_KEYS.pskKey]!,
  };
}

/**
 * The libnbd URI of an attachment with TLS required. The export name is percent-encoded (its `/` becomes `%2F`);
 * the socket path is left as is, the way libnbd's clients take it.
 * The PSK file is not part of it: the node writes `IDENTITY:KEY` to a file of its own and adds it with withPskFile.
 */
export function nbdUriFor(nbdAddress: string, exportName: string, pskIdentity: string): string {
  const exportPath = encodeURIComponent(exportName);
  const user = encodeURIComponent(pskIdentity);
  if (nbdAddress.startsWith("unix://")) {
    const socket = nbdAddress.slice("unix://".length);
    return `nbds+unix://${user}@/${exportPath}?socket=${socket}`;
  }
  if (nbdAddress.startsWith("tcp://")) {
    return `nbds://${user}@${nbdAddress.slice("tcp://".length)}/${exportPath}`;
  }
  throw new Error(`Cannot build an NBD URI from the address ${nbdAddress}: expected tcp://HOST:PORT or unix:///PATH.`);
}

/** `uri` with libnbd's `tls-psk-file` query parameter added (the file holds `IDENTITY:HEXKEY`). */
export function withPskFile(uri: string, pskFile: string): string {
  return `${uri}${uri.includes("?") ? "&" : "?"}tls-psk-file=${pskFile}`;
}
