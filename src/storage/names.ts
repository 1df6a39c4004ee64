// Validation of object names and `volumeGroup/name` ids, shared by every engine entry point.
import { InvalidArgumentError } from "./errors.ts";

/** Longest name a volume group, volume or snapshot may have (Azure's limit). */
export const MAX_NAME_LENGTH = 63;

const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** Throws InvalidArgument unless `name` is 1–63 characters of [a-z0-9-] that start and end with a letter or digit. */
export function validateName(kind: string, name: string): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new InvalidArgumentError(`A ${kind} name is required; use 1 to ${MAX_NAME_LENGTH} characters of a-z, 0-9 and '-'.`);
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidArgumentError(
      `The ${kind} name '${name.slice(0, 80)}${name.length > 80 ? "…" : ""}' is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}.`,
    );
  }
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(
      `The ${kind} name '${name}' is not allowed: use only a-z, 0-9 and '-', starting and ending with a letter or digit.`,
    );
  }
}

/** The parts of a `volumeGroup/name` id. */
export interface ParsedId {
  volumeGroup: string;
  name: string;
}

/** Splits and validates a `volumeGroup/name` id; throws InvalidArgument naming the expected form. */
export function parseId(kind: string, id: string): ParsedId {
  const parts = typeof id === "string" ? id.split("/") : [];
  if (parts.length !== 2) {
    throw new InvalidArgumentError(`The ${kind} id '${String(id)}' is not of the form VOLUME_GROUP/NAME.`);
  }
  const [volumeGroup, name] = parts as [string, string];
  validateName("volume group", volumeGroup);
  validateName(kind, name);
  return { volumeGroup, name };
}

/** Joins a volume group and a name into an id. */
export function joinId(volumeGroup: string, name: string): string {
  return `${volumeGroup}/${name}`;
}
