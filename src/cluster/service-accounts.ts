// Which of the chart's ServiceAccounts each component of the local cluster runs as. The chart labels each account
// with `app.kubernetes.io/component`: `controller` (esan csi --mode controller and all its sidecars, since a pod has
// one account), `node`, and `snapshot-controller`.

/** The chart components that own a ServiceAccount. */
export type ChartComponent = "controller" | "node" | "snapshot-controller";

/** A ServiceAccount as listed: its name and labels. */
export interface AccountListing {
  metadata: { name: string; labels?: Record<string, string> };
}

/** The name of the account labelled `component` among `accounts`; throws a sentence naming what there is otherwise. */
export function serviceAccountFor(component: ChartComponent, accounts: readonly AccountListing[]): string {
  const found = accounts.filter((a) => a.metadata.labels?.["app.kubernetes.io/component"] === component);
  if (found.length !== 1) {
    const listed = accounts.map((a) => `${a.metadata.name} (${a.metadata.labels?.["app.kubernetes.io/component"] ?? "no component label"})`).join(", ");
    throw new Error(
      `The chart must create exactly one ServiceAccount labelled app.kubernetes.io/component=${component}, and it created ${found.length} (accounts: ${listed || "none"}).`,
    );
  }
  return found[0]!.metadata.name;
}
