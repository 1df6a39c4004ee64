// Listen addresses in URL form: unix:///PATH and tcp://HOST:PORT.
import { NbdConfigError } from "./config-error.ts";

/** A parsed listen address. */
export type ListenAddress = { transport: "unix"; path: string } | { transport: "tcp"; host: string; port: number };

/** Parses "unix:///abs/path" or "tcp://127.0.0.1:10809" ("tcp://[::1]:0"; port 0 asks the kernel for a free one). */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith("unix://")) {
    const path = text.slice("unix://".length);
    if (!path.startsWith("/")) throw new NbdConfigError(`The listen address ${text} needs an absolute path: unix:///PATH.`);
    return { transport: "unix", path };
  }
  if (text.startsWith("tcp://")) {
    const match = /^tcp:\/\/(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})$/.exec(text);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port > 65535) throw new NbdConfigError(`The listen address ${text} is not tcp://HOST:PORT.`);
    return { transport: "tcp", host: match[1]!.replace(/^\[|\]$/g, ""), port };
  }
  throw new NbdConfigError(`The listen address ${text} is neither unix:///PATH nor tcp://HOST:PORT.`);
}

/** The URL form of an address, e.g. after port 0 was resolved. */
export function formatListenAddress(address: ListenAddress): string {
  if (address.transport === "unix") return `unix://${address.path}`;
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `tcp://${host}:${address.port}`;
}
