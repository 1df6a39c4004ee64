// CSI Identity: the driver's name and version, the capabilities of the whole plugin, and readiness.
import { answer, type CsiMethods } from "./rpc.ts";

/** The CSI driver name (GetPluginInfo), as StorageClasses name it in `provisioner`. */
export const DRIVER_NAME = "esan.csi.dev";

/** Options of identityService. */
export interface IdentityOptions {
  version: string;
  /**
   * Readiness: resolves when the process can serve, throws (an error with a sentence) when it cannot. The controller
   * asks the SAN, so Probe fails while the SAN is unreachable.
   */
  probe: () => Promise<void>;
}

/**
 * The plugin's capabilities. They describe the driver, not one process, so every mode reports all of them: kubelet
 * and the sidecars (and csi-sanity) ask whichever socket they hold.
 */
export const PLUGIN_CAPABILITIES = [
  { service: { type: "CONTROLLER_SERVICE" } },
  { service: { type: "GROUP_CONTROLLER_SERVICE" } },
  { service: { type: "SNAPSHOT_METADATA_SERVICE" } },
  { volumeExpansion: { type: "ONLINE" } },
  { volumeExpansion: { type: "OFFLINE" } },
];

/** The Identity service's handlers. */
export function identityService(options: IdentityOptions): CsiMethods {
  return {
    GetPluginInfo: answer(() => ({ name: DRIVER_NAME, vendorVersion: options.version, manifest: {} })),
    GetPluginCapabilities: answer(() => ({ capabilities: PLUGIN_CAPABILITIES })),
    Probe: {
      handle: async () => {
        await options.probe();
        return { ready: { value: true } };
      },
    },
  };
}
