// STARTTLS with TLS-PSK: takes over a plain socket after the ACK, as a TLS server keyed by the client's PSK identity.
import type net from "node:net";
import tls from "node:tls";

/**
 * Cipher list for the take-over. TLS 1.3 first: OpenSSL serves an external PSK from the server callback with
 * TLS_AES_128_GCM_SHA256 (SHA-256 binder, what GnuTLS in libnbd and qemu sends), and libnbd/qemu offer psk_dhe_ke,
 * so sessions get forward secrecy. TLS 1.2 PSK suites stay for older GnuTLS: ECDHE-PSK and DHE-PSK (forward secret)
 * before plain PSK. The server's order wins (honorCipherOrder): AES-GCM runs on the CPU's AES instructions, and
 * GnuTLS would otherwise pick ChaCha20. TLS 1.3 PSK suites must use SHA-256, the hash of an external PSK.
 */
export const PSK_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-PSK-CHACHA20-POLY1305",
  "ECDHE-PSK-AES256-CBC-SHA384",
  "ECDHE-PSK-AES128-CBC-SHA256",
  "DHE-PSK-AES256-GCM-SHA384",
  "DHE-PSK-AES128-GCM-SHA256",
  "DHE-PSK-CHACHA20-POLY1305",
  "PSK-AES256-GCM-SHA384",
  "PSK-AES128-GCM-SHA256",
  "PSK-CHACHA20-POLY1305",
].join(":");

/** Options of one PSK take-over. */
export interface PskTakeOver {
  /** The key for an identity, or null to fail the handshake (unknown or revoked identity). */
  pskKey(identity: string): Buffer | null;
  /** Told the identity whose key was used; trust it only once the socket emits "secure". */
  onIdentity(identity: string): void;
}

/**
 * Wraps `socket` (which must be paused, with our data listener removed, and the STARTTLS ACK already written) in a
 * server-side TLS socket. A wrong key fails the handshake with an "error" event. Nothing here sees key bytes except
 * to hand them to OpenSSL, and nothing logs them.
 */
export function takeOverWithPsk(socket: net.Socket, options: PskTakeOver): tls.TLSSocket {
  return new tls.TLSSocket(socket, {
    isServer: true,
    requestCert: false,
    honorCipherOrder: true,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ciphers: PSK_CIPHERS,
    dhparam: "auto",
    pskCallback: (_socket: tls.TLSSocket, identity: string): Buffer | null => {
      const key = options.pskKey(identity);
      if (key === null || key.byteLength === 0) return null;
      options.onIdentity(identity);
      return key;
    },
  } as tls.TLSSocketOptions);
}
