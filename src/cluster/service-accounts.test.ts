// Which chart ServiceAccount each component runs as.
import { describe, expect, it } from "vitest";
import { serviceAccountFor } from "./service-accounts.ts";

describe("serviceAccountFor", () => {
  const accounts = [
    { metadata: { name: "esan-controller", labels: { "app.kubernetes.io/component": "controller" } } },
    { metadata: { name: "esan-node", labels: { "app.kubernetes.io/component": "node" } } },
    { metadata: { name: "esan-snapshot-controller", labels: { "app.kubernetes.io/component": "snapshot-controller" } } },
    { metadata: { name: "default" } },
  ];

  it("picks the account by the chart's component label, not by its name", () => {
    expect(serviceAccountFor("controller", accounts)).toBe("esan-controller");
    expect(serviceAccountFor("snapshot-controller", accounts)).toBe("esan-snapshot-controller");
    expect(serviceAccountFor("node", accounts)).toBe("esan-node");
  });

  it("refuses with a sentence listing the accounts when none or several carry the label", () => {
    expect(() => serviceAccountFor("node", accounts.slice(0, 1))).toThrow(
      "The chart must create exactly one ServiceAccount labelled app.kubernetes.io/component=node, and it created 0 (accounts: esan-controller (controller)).",
    );
    expect(() => serviceAccountFor("controller", [accounts[0]!, accounts[0]!])).toThrow(/created 2/);
  });
});
