import { describe, expect, it } from "vitest";
import { PUBLISH_CONTEXT_KEYS } from "./publish-context.ts";
import { REDACTED, redact } from "./redact.ts";

describe("redact", () => {
  it("hides secrets, mount flags and the PSK key, and keeps everything else", () => {
    const request = {
      volumeId: "vg1/db",
      secrets: { password: "hunter2" },
      volumeCapability: { mount: { fsType: "ext4", mountFlags: ["password=hunter2"] } },
      publishContext: { [PUBLISH_CONTEXT_KEYS.pskKey]: "ab".repeat(32), [PUBLISH_CONTEXT_KEYS.pskIdentity]: "esan-n1-0001" },
    };
    const logged = redact(request);
    expect(JSON.stringify(logged)).not.toContain("hunter2");
    expect(JSON.stringify(logged)).not.toContain("ab".repeat(32));
    expect(logged).toEqual({
      volumeId: "vg1/db",
      secrets: { password: REDACTED },
      volumeCapability: { mount: { fsType: "ext4", mountFlags: [REDACTED] } },
      publishContext: { [PUBLISH_CONTEXT_KEYS.pskKey]: REDACTED, [PUBLISH_CONTEXT_KEYS.pskIdentity]: "esan-n1-0001" },
    });
    expect(request.secrets.password).toBe("hunter2");
  });
});
