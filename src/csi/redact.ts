// Strips secrets from CSI messages before they are logged: every `secrets` map, the PSK key in a publish_context, and
// mount flags (which the spec says may carry credentials). Values are replaced, keys stay, so a log still shows what
// was passed without showing it.
import { REDACTED_PUBLISH_CONTEXT_KEYS } from "./publish-context.ts";

/** What a redacted value reads as in the log. */
export const REDACTED = "[redacted]";

/** Fields whose whole value is secret, wherever they appear. */
const SECRET_FIELDS = new Set(["secrets", "mountFlags"]);

/** Fields holding publish_context maps, in which only the keys listed as secret are hidden. */
const PUBLISH_CONTEXT_FIELDS = new Set(["publishContext"]);

/** A copy of a decoded CSI message that is safe to log. Never mutates `message`. */
export function redact(message: unknown): unknown {
  return redactValue(message, undefined);
}

function redactValue(value: unknown, field: string | undefined): unknown {
  if (field !== undefined && SECRET_FIELDS.has(field)) return hideAll(value);
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, undefined));
  if (value === null || typeof value !== "object") return value;
  const copy: Record<string, unknown> = {};
  const inPublishContext = field !== undefined && PUBLISH_CONTEXT_FIELDS.has(field);
  for (const [key, inner] of Object.entries(value)) {
    copy[key] = inPublishContext && REDACTED_PUBLISH_CONTEXT_KEYS.includes(key) ? REDACTED : redactValue(inner, key);
  }
  return copy;
}

/** Keeps the shape (which keys, how many flags) and hides every value. */
function hideAll(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(() => REDACTED);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.keys(value).map((key) => [key, REDACTED]));
  return value === undefined || value === "" ? value : REDACTED;
}
