import type { Clock } from "@vpnpanel/common";
import { type Db, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { toNumber, tsParam } from "../shared/sql-values";

// Keeps the outbox and the webhook delivery log bounded. An outbox event is deleted only when it is
// older than the retention AND every registered consumer has moved past it, so a lagging consumer
// (a collector that was down) never loses events; with no consumer registered nothing is deleted.
// Deletes run in bounded batches so no single statement holds locks on a large range.

const BATCH = 10_000;

export async function pruneRetention(db: Db, clock: Clock, retentionHours: number, signal?: AbortSignal) {
  const cutoff = tsParam(new Date(clock.now().getTime() - retentionHours * 3_600_000));
  let outbox = 0;
  let deliveries = 0;
  for (let i = 0; i < 100 && !signal?.aborted; i++) {
    const [r] = await queryRows<{ n: unknown }>(
      db,
      sql`WITH horizon AS (
            SELECT last_txid, last_id FROM outbox_txid_cursors ORDER BY last_txid, last_id LIMIT 1),
          gone AS (
            DELETE FROM outbox WHERE id IN (
              SELECT o.id FROM outbox o, horizon h
              WHERE o.at < ${cutoff} AND (o.txid, o.id) <= (h.last_txid, h.last_id)
                AND o.id <= coalesce((SELECT min(last_id) FROM outbox_cursors), o.id)
              ORDER BY o.id LIMIT ${BATCH})
            RETURNING 1)
          SELECT count(*) AS n FROM gone`,
    );
    const n = toNumber(r?.n) ?? 0;
    outbox += n;
    if (n < BATCH) break;
  }
  for (let i = 0; i < 100 && !signal?.aborted; i++) {
    const [r] = await queryRows<{ n: unknown }>(
      db,
      sql`WITH gone AS (
            DELETE FROM webhook_deliveries WHERE id IN (
              SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ${cutoff} LIMIT ${BATCH})
            RETURNING 1)
          SELECT count(*) AS n FROM gone`,
    );
    const n = toNumber(r?.n) ?? 0;
    deliveries += n;
    if (n < BATCH) break;
  }
  return { outbox, deliveries };
}
