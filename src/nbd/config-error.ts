// The error for an NBD server configured in a way it refuses to run (bad address, TCP without TLS).

/** Thrown by the server's constructor and listen() for unusable settings; the message names the setting. */
export class NbdConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NbdConfigError";
  }
}
