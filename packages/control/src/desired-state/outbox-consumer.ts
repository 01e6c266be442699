import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { advanceOutboxCursor, lockOutboxCursor } from "../outbox/outbox";
import { assignNewSubscriptions } from "./assignment";
import { type MemberChange, reconcileMembers } from "./reconcile";

// The "nodes" consumer of the lifecycle outbox. Every user.* event names a subscription; the consumer
// assigns nodes to subscriptions that have none (user.created, or anything created before this
// consumer existed), reconciles the subscriptions' desired state on their nodes (adds, removals on
// limited / expired / disabled / deleted, credential and engine changes), and collects the ones
// whose lease (quota, usage reset, expiry) changed without a revision change. Page, changes and the
// cursor move commit together; the effects are published after commit by the caller.
//
// Cursor: (txid, id) in outbox_txid_cursors, reading only rows whose transaction is older than every
// running one, so an event that commits late is never skipped (see 0004_nodes.sql). The cursor row
// is taken FOR UPDATE SKIP LOCKED: with several collectors, one consumes at a time and the others skip.

export const NODES_CONSUMER = "nodes";

/** Topics after which served subscribers need a fresh lease (budget or expiry). */
const LEASE_TOPICS = new Set([
  "user.activated",
  "user.enabled",
  "user.renewed",
  "user.reset",
  "user.quota_changed",
  "user.plan_changed",
  "user.updated",
]);

export interface ConsumerStep {
  events: number;
  changes: MemberChange[];
  revisions: Map<string, bigint>;
  /** Subscriptions whose lease changed while their membership did not. */
  leaseSubscriptions: string[];
}

interface OutboxRow {
  id: unknown;
  txid: unknown;
  topic: string;
  subject_id: string | null;
  payload: Record<string, unknown> | string;
}

function subscriptionOf(row: OutboxRow): string | null {
  if (!row.topic.startsWith("user.")) return null;
  const payload = typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload;
  const fromPayload = payload?.subscription_id;
  if (typeof fromPayload === "string" && fromPayload) return fromPayload;
  return row.subject_id?.startsWith("sub_") ? row.subject_id : null;
}

export async function consumeOutboxPage(
  db: Db,
  limit = 500,
  consumer = NODES_CONSUMER,
): Promise<ConsumerStep> {
  return db.transaction(async (tx) => {
    const empty: ConsumerStep = { events: 0, changes: [], revisions: new Map(), leaseSubscriptions: [] };
    const cursor = await lockOutboxCursor(tx, consumer);
    if (!cursor) return empty;
    const events = await queryRows<OutboxRow>(
      tx,
      sql`SELECT id::text AS id, txid::text AS txid, topic, subject_id, payload FROM outbox
          WHERE (txid, id) > (${cursor.last_txid}::xid8, ${String(cursor.last_id)}::bigint)
            AND txid < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY txid, id LIMIT ${limit}`,
    );
    if (events.length === 0) return empty;
    const subs = new Set<string>();
    const leased = new Set<string>();
    for (const e of events) {
      const sub = subscriptionOf(e);
      if (!sub) continue;
      subs.add(sub);
      if (LEASE_TOPICS.has(e.topic)) leased.add(sub);
    }
    const ids = [...subs].sort();
    await assignNewSubscriptions(tx, ids);
    const result = await reconcileMembers(tx, { subscriptionIds: ids });
    const last = events.at(-1)!;
    await advanceOutboxCursor(tx, consumer, last);
    const changed = new Set(result.changes.map((c) => c.subscriptionId));
    return {
      events: events.length,
      changes: result.changes,
      revisions: result.revisions,
      leaseSubscriptions: [...leased].filter((s) => !changed.has(s)),
    };
  });
}

/** The nodes that carry these subscriptions now (to route lease updates). */
export async function nodesServing(db: DbOrTx, subscriptionIds: string[]): Promise<Map<string, string[]>> {
  if (subscriptionIds.length === 0) return new Map();
  const rows = await queryRows<{ node_id: string; subscription_id: string }>(
    db,
    sql`SELECT node_id, subscription_id FROM node_members
        WHERE subscription_id = ANY(${sql.param(subscriptionIds)}::text[]) AND NOT suspended`,
  );
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.node_id);
    if (list) list.push(r.subscription_id);
    else out.set(r.node_id, [r.subscription_id]);
  }
  return out;
}
