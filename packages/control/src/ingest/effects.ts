import type { DbOrTx } from "@vpnpanel/db";
import { nodesServing } from "../desired-state/outbox-consumer";
import type { NodeBus } from "../nodes/node-bus";
import type { IngestResult } from "./ingest";

/**
 * After an ingest committed outside a collector (POST /traffic/events): tell every collector which
 * nodes have new desired state (the removals of subscribers cut off by this usage) and which leases
 * moved. A collector does the same through its hub, with the direct path for its own sessions.
 */
export async function publishIngestEffects(db: DbOrTx, bus: NodeBus, result: IngestResult): Promise<void> {
  if (result.revisions.size > 0)
    await bus.publish({ type: "changed", nodeIds: [...result.revisions.keys()] });
  if (result.leaseChanged.length > 0) {
    const serving = await nodesServing(db, result.leaseChanged);
    if (serving.size > 0) {
      await bus.publish({
        type: "leases",
        nodeIds: [...serving.keys()],
        subscriptionIds: result.leaseChanged,
      });
    }
  }
}
