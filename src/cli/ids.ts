// Reading the VG/NAME ids and kind:VG/NAME sources that CLI arguments name objects by.
import { InvalidArgumentError } from "../storage/errors.ts";

/** An object id split into its volume group and name; `id` is the engine's "vg/name" form. */
export interface ObjectRef {
  id: string;
  volumeGroup: string;
  name: string;
}

/** Splits "VG/NAME" into its parts; the engine checks the naming rules, this only checks the shape. */
export function parseObjectId(text: string, what = "id"): ObjectRef {
  const parts = text.split("/");
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new InvalidArgumentError(`Cannot read ${what} "${text}": write it as VOLUME-GROUP/NAME, such as vg1/db.`);
  }
  return { id: text, volumeGroup: parts[0], name: parts[1] };
}

/** Where `volume create --source` copies from: a snapshot or a volume by id, or a disk snapshot by name. */
export interface VolumeSource {
  kind: "snapshot" | "volume" | "diskSnapshot";
  id: string;
}

/** Parses `snapshot:VG/SNAP`, `volume:VG/VOL` or `disk-snapshot:NAME`. */
export function parseVolumeSource(text: string): VolumeSource {
  const colon = text.indexOf(":");
  const kind = text.slice(0, colon);
  const rest = text.slice(colon + 1);
  if (colon >= 0 && kind === "disk-snapshot") {
    if (rest === "" || rest.includes("/")) {
      throw new InvalidArgumentError(`Cannot read --source "${text}": write disk-snapshot:NAME with the disk snapshot's name, such as disk-snapshot:db-nightly.`);
    }
    return { kind: "diskSnapshot", id: rest };
  }
  if (colon < 0 || (kind !== "snapshot" && kind !== "volume")) {
    throw new InvalidArgumentError(`Cannot read --source "${text}": write snapshot:VG/SNAPSHOT, volume:VG/VOLUME or disk-snapshot:NAME.`);
  }
  return { kind, id: parseObjectId(rest, "--source").id };
}

/** Parses the comma-separated volume list of a group snapshot; a bare NAME means a volume in `volumeGroup`. */
export function parseVolumeList(text: string, volumeGroup: string): string[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) {
    throw new InvalidArgumentError(`Cannot read --volumes "${text}": write a comma-separated list such as ${volumeGroup}/a,${volumeGroup}/b.`);
  }
  return items.map((item) => (item.includes("/") ? parseObjectId(item, "--volumes entry").id : `${volumeGroup}/${item}`));
}
