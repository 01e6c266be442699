import { type DbOrTx, queryRows, schema } from "@vpnpanel/db";
import { DOMAIN_EVENTS } from "@vpnpanel/domain";
import { sql } from "drizzle-orm";

// The transactional outbox: domain events are written in the same transaction as the change, and
// consumers (node enforcement, webhooks) read them after commit, each with its own cursor.
//
// Ordering hazard: bigserial ids are assigned at insert, but transactions commit in any order, so a
// cursor that moved past id 41 could skip an id-40 row committed later. Readers therefore only see
// rows whose writing transaction id is below the current snapshot's xmin (no transaction that old is
// still running), and rows behind that horizon are final.

/**
 * Events about subscribers: the state machine's events plus the changes that do not move the state.
 * Payload always carries subscription_id and user_id when they exist.
 */
export const outboxTopics = [
  ...DOMAIN_EVENTS,
  "user.created",
  "user.updated",
  "user.credentials_rotated",
  "user.engines_changed",
  "user.token_reissued",
] as const;
export type OutboxTopic = (typeof outboxTopics)[number];

export interface OutboxEvent {
  tenantId: string | null;
  topic: OutboxTopic | (string & {});
  subjectId?: string | null;
  payload?: Record<string, unknown>;
}

export interface OutboxRow {
  id: string;
  at: Date;
  tenantId: string | null;
  topic: string;
  subjectId: string | null;
  payload: Record<string, unknown>;
}

/** Appends events inside the caller's transaction. */
export async function appendOutbox(tx: DbOrTx, events: OutboxEvent | OutboxEvent[]): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  await tx.insert(schema.outbox).values(
    list.map((e) => ({
      tenantId: e.tenantId,
      topic: e.topic,
      subjectId: e.subjectId ?? null,
      payload: e.payload ?? {},
    })),
  );
}

/** Reads the next committed events after the consumer's cursor (does not advance it). */
export async function readOutbox(db: DbOrTx, consumer: string, limit = 500): Promise<OutboxRow[]> {
  const rows = await queryRows<{
    id: string;
    at: Date | string;
    tenant_id: string | null;
    topic: string;
    subject_id: string | null;
    payload: Record<string, unknown> | string;
  }>(
    db,
    sql`SELECT o.id::text AS id, o.at, o.tenant_id, o.topic, o.subject_id, o.payload
        FROM outbox o
        WHERE o.id > coalesce((SELECT last_id FROM outbox_cursors WHERE consumer = ${consumer}), 0)
          AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.id
        LIMIT ${limit}`,
  );
  return rows.map((r) => ({
    id: r.id,
    at: r.at instanceof Date ? r.at : new Date(r.at),
    tenantId: r.tenant_id,
    topic: r.topic,
    subjectId: r.subject_id,
    payload: typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload,
  }));
}

/** Moves the consumer's cursor forward (never backward) after it has handled events up to `lastId`. */
export async function advanceOutbox(db: DbOrTx, consumer: string, lastId: string): Promise<void> {
  await db.execute(sql`
    INSERT INTO outbox_cursors (consumer, last_id, updated_at) VALUES (${consumer}, ${lastId}::bigint, now())
    ON CONFLICT (consumer) DO UPDATE
      SET last_id = greatest(outbox_cursors.last_id, excluded.last_id), updated_at = now()`);
}

/**
 * Locks a consumer's (txid, id) cursor row in outbox_txid_cursors (0004_nodes.sql), creating it on
 * first use. Null when another replica holds it (SKIP LOCKED): that one is consuming the page.
 */
export async function lockOutboxCursor(
  tx: DbOrTx,
  consumer: string,
): Promise<{ last_txid: string; last_id: string } | null> {
  const select = () =>
    queryRows<{ last_txid: string; last_id: string }>(
      tx,
      sql`SELECT last_txid::text AS last_txid, last_id::text AS last_id FROM outbox_txid_cursors
          WHERE consumer = ${consumer} FOR UPDATE SKIP LOCKED`,
    );
  let rows = await select();
  if (rows.length === 0) {
    await tx.execute(
      sql`INSERT INTO outbox_txid_cursors (consumer) VALUES (${consumer}) ON CONFLICT DO NOTHING`,
    );
    rows = await select();
  }
  return rows[0] ?? null;
}

/** Moves a consumer's cursor past the last event it consumed (in the transaction that consumed it). */
export async function advanceOutboxCursor(
  tx: DbOrTx,
  consumer: string,
  last: { txid: unknown; id: unknown },
): Promise<void> {
  await tx.execute(sql`UPDATE outbox_txid_cursors
    SET last_txid = ${String(last.txid)}::xid8, last_id = ${String(last.id)}::bigint, updated_at = now()
    WHERE consumer = ${consumer}`);
}
