import { type DbOrTx, queryRows } from "@vpnpanel/db";
import { SERVING_STATES } from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import { toBigInt } from "../shared/sql-values";

// Reconciliation of desired state. What a node must carry follows from
//   subscriptions in a serving state (or disabled → kept, suspended)
//   × engines (subscription ∩ the user's override ∩ the node's)
//   × node_assignments,
// and node_members holds what was last published. This module compares the two for a scope (some
// subscriptions, or one node), and for every difference writes the member row, one node_changes row
// and bumps the node's revision by one. It is idempotent: running it twice, or for an event that
// changed nothing a node sees, writes nothing. That is what makes the outbox path and the ingest
// enforcement path safe to both run for the same quota crossing.
//
// Lock order (every writer of desired state): node_members rows of the scope, sorted; then
// node_revisions rows, sorted. Ingest takes its usage and subscription locks before calling this.

export type ChangeOp = "add" | "update" | "remove" | "suspend" | "resume";

export interface MemberChange {
  nodeId: string;
  subscriptionId: string;
  op: ChangeOp;
  revision: bigint;
}

export interface ReconcileResult {
  changes: MemberChange[];
  /** node id → its revision after this reconciliation (only nodes that changed). */
  revisions: Map<string, bigint>;
}

export type ReconcileScope = { subscriptionIds: readonly string[] } | { nodeId: string };

const served = sql.raw(`(${[...SERVING_STATES, "disabled"].map((s) => `'${s}'`).join(", ")})`);

function scopeSql(scope: ReconcileScope): { desired: SQL; current: SQL } {
  if ("nodeId" in scope) {
    return { desired: sql`a.node_id = ${scope.nodeId}`, current: sql`m.node_id = ${scope.nodeId}` };
  }
  const ids = sql`${sql.param([...scope.subscriptionIds])}::text[]`;
  return { desired: sql`s.id = ANY(${ids})`, current: sql`m.subscription_id = ANY(${ids})` };
}

/** The desired member rows of a scope, as a SELECT (node_id, subscription_id, suspended, engines, stamp). */
export function desiredMembersSql(where: SQL): SQL {
  // The stamp names everything a node receives for the member besides its state and engines:
  // credentials (rotated_at moves on every rotation) and the WireGuard address.
  return sql`SELECT a.node_id, s.id AS subscription_id, (s.state = 'disabled') AS suspended,
      ARRAY(SELECT e FROM unnest(s.engines) AS e
            WHERE e = ANY(n.engines) AND (u.engines IS NULL OR e = ANY(u.engines)) ORDER BY e) AS engines,
      concat_ws('|', c.rotated_at::text, c.xray_uuid::text, c.wg_public_key, ia.pool_id, ia."offset"::text) AS stamp
    FROM subscriptions s
    JOIN users u ON u.id = s.user_id
    JOIN credentials c ON c.user_id = s.user_id
    JOIN node_assignments a ON a.subscription_id = s.id
    JOIN nodes n ON n.id = a.node_id
    LEFT JOIN ip_allocations ia ON ia.user_id = s.user_id
    WHERE ${where} AND s.state IN ${served}`;
}

export async function reconcileMembers(tx: DbOrTx, scope: ReconcileScope): Promise<ReconcileResult> {
  const empty: ReconcileResult = { changes: [], revisions: new Map() };
  if ("subscriptionIds" in scope && scope.subscriptionIds.length === 0) return empty;
  const where = scopeSql(scope);
  // Serializes with any other writer of the same members (see the lock order above): after the wait,
  // the next statement reads what that writer committed, so a change is never published twice.
  await tx.execute(sql`SELECT 1 FROM node_members m WHERE ${where.current}
    ORDER BY m.node_id, m.subscription_id FOR UPDATE`);
  const diff = await queryRows<{
    node_id: string;
    subscription_id: string;
    op: ChangeOp;
    suspended: boolean | null;
    engines: string[] | null;
    stamp: string | null;
  }>(
    tx,
    sql`WITH d AS (${desiredMembersSql(where.desired)}),
        dd AS (SELECT * FROM d WHERE cardinality(d.engines) > 0),
        cur AS (SELECT m.node_id, m.subscription_id, m.suspended, m.engines, m.stamp FROM node_members m
                WHERE ${where.current})
      SELECT coalesce(dd.node_id, cur.node_id) AS node_id,
             coalesce(dd.subscription_id, cur.subscription_id) AS subscription_id,
             CASE WHEN dd.node_id IS NULL THEN 'remove'
                  WHEN cur.node_id IS NULL THEN 'add'
                  WHEN dd.suspended AND NOT cur.suspended THEN 'suspend'
                  WHEN cur.suspended AND NOT dd.suspended THEN 'resume'
                  ELSE 'update' END AS op,
             dd.suspended, dd.engines, dd.stamp
      FROM dd FULL JOIN cur ON cur.node_id = dd.node_id AND cur.subscription_id = dd.subscription_id
      WHERE dd.node_id IS NULL OR cur.node_id IS NULL OR dd.suspended <> cur.suspended
         OR dd.engines <> cur.engines OR dd.stamp <> cur.stamp
      ORDER BY 1, 2`,
  );
  if (diff.length === 0) return empty;

  const nodeIds = [...new Set(diff.map((d) => d.node_id))].sort();
  const bases = await queryRows<{ node_id: string; revision: unknown }>(
    tx,
    sql`SELECT node_id, revision::text AS revision FROM node_revisions
        WHERE node_id = ANY(${sql.param(nodeIds)}::text[]) ORDER BY node_id FOR UPDATE`,
  );
  const next = new Map(bases.map((b) => [b.node_id, toBigInt(b.revision) ?? 1n]));
  const changes: MemberChange[] = [];
  for (const d of diff) {
    const base = next.get(d.node_id);
    if (base === undefined) continue; // the node is being deleted
    const revision = base + 1n;
    next.set(d.node_id, revision);
    changes.push({ nodeId: d.node_id, subscriptionId: d.subscription_id, op: d.op, revision });
  }
  const rows = diff.filter((d) => next.has(d.node_id));
  await tx.execute(sql`
    WITH v AS (
      SELECT * FROM unnest(
        ${sql.param(changes.map((c) => c.nodeId))}::text[],
        ${sql.param(changes.map((c) => c.revision.toString()))}::bigint[],
        ${sql.param(changes.map((c) => c.subscriptionId))}::text[],
        ${sql.param(changes.map((c) => c.op))}::text[],
        ${sql.param(rows.map((r) => r.suspended))}::boolean[],
        ${sql.param(rows.map((r) => (r.engines ? r.engines.join(",") : null)))}::text[],
        ${sql.param(rows.map((r) => r.stamp))}::text[]
      ) AS v(node_id, revision, subscription_id, op, suspended, engines, stamp)),
    ch AS (
      INSERT INTO node_changes (node_id, revision, subscription_id, op)
      SELECT node_id, revision, subscription_id, op FROM v),
    del AS (
      DELETE FROM node_members m USING v
      WHERE v.op = 'remove' AND m.node_id = v.node_id AND m.subscription_id = v.subscription_id),
    ups AS (
      INSERT INTO node_members (node_id, subscription_id, suspended, engines, stamp, revision)
      SELECT node_id, subscription_id, suspended, string_to_array(engines, ','), stamp, revision
      FROM v WHERE op <> 'remove'
      ON CONFLICT (node_id, subscription_id) DO UPDATE SET suspended = excluded.suspended,
        engines = excluded.engines, stamp = excluded.stamp, revision = excluded.revision)
    UPDATE node_revisions r SET revision = x.revision
    FROM (SELECT node_id, max(revision) AS revision FROM v GROUP BY node_id) x
    WHERE r.node_id = x.node_id`);
  const revisions = new Map<string, bigint>();
  for (const c of changes) revisions.set(c.nodeId, c.revision);
  return { changes, revisions };
}

/** Records a node-config change (inbounds, WireGuard interfaces): one revision with a 'config' row. */
export async function bumpNodeConfig(tx: DbOrTx, nodeId: string): Promise<bigint> {
  const rows = await queryRows<{ revision: unknown }>(
    tx,
    sql`WITH r AS (
          UPDATE node_revisions SET revision = revision + 1, config_revision = revision + 1
          WHERE node_id = ${nodeId} RETURNING revision)
        INSERT INTO node_changes (node_id, revision, subscription_id, op)
        SELECT ${nodeId}, r.revision, NULL, 'config' FROM r RETURNING revision::text AS revision`,
  );
  return toBigInt(rows[0]?.revision) ?? 0n;
}
