// Reading kubectl's multi-document JSON output (the classes of examples/).
import { describe, expect, it } from "vitest";
import { parseJsonStream } from "./csi-stack.ts";

describe("parseJsonStream", () => {
  it("splits kubectl's indented objects, one after another, and keeps a single object or a List whole", () => {
    const two = '{\n    "kind": "StorageClass",\n    "metadata": {\n        "name": "a"\n    }\n}\n{\n    "kind": "VolumeSnapshotClass",\n    "metadata": {\n        "name": "b"\n    }\n}\n';
    expect(parseJsonStream(two).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["StorageClass/a", "VolumeSnapshotClass/b"]);
    expect(parseJsonStream('{\n    "kind": "List",\n    "metadata": {\n        "name": ""\n    },\n    "items": []\n}\n')).toHaveLength(1);
  });
});
