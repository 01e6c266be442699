import { type DbOrTx, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { toNumber } from "../shared/sql-values";
import { type AssignmentPolicy, type CandidateNode, chooseNodes, type Strategy } from "./strategies";

// Writing assignments: the tenant's strategy (node_assignment_policies, default 'all') decides for
// subscriptions that have none yet. Runs inside the caller's transaction; the policy row is locked so
// two consumers cannot hand out the same round-robin position.

export const DEFAULT_POLICY = { strategy: "all" as Strategy, tags: [] as string[], redundancy: 0 };

async function lockPolicy(tx: DbOrTx, tenantId: string): Promise<AssignmentPolicy> {
  const rows = await queryRows<{
    strategy: Strategy;
    tags: string[];
    redundancy: number;
    rr_cursor: unknown;
  }>(
    tx,
    sql`SELECT strategy, tags, redundancy, rr_cursor::text AS rr_cursor FROM node_assignment_policies
        WHERE tenant_id = ${tenantId} FOR UPDATE`,
  );
  const row = rows[0];
  if (!row) return { ...DEFAULT_POLICY, cursor: 0 };
  return {
    strategy: row.strategy,
    tags: row.tags,
    redundancy: row.redundancy,
    cursor: toNumber(row.rr_cursor) ?? 0,
  };
}

async function candidates(tx: DbOrTx, tenantId: string, withLoad: boolean): Promise<CandidateNode[]> {
  const rows = await queryRows<{
    id: string;
    tags: string[];
    engines: string[];
    capacity: number | null;
    load: unknown;
  }>(
    tx,
    withLoad
      ? sql`SELECT n.id, n.tags, n.engines, n.capacity, coalesce(l.load, 0)::int AS load
            FROM nodes n
            LEFT JOIN (SELECT node_id, count(*) AS load FROM node_assignments
                       WHERE tenant_id = ${tenantId} GROUP BY node_id) l ON l.node_id = n.id
            WHERE n.tenant_id = ${tenantId} AND n.status <> 'revoked' ORDER BY n.id`
      : sql`SELECT n.id, n.tags, n.engines, n.capacity, 0 AS load FROM nodes n
            WHERE n.tenant_id = ${tenantId} AND n.status <> 'revoked' ORDER BY n.id`,
  );
  return rows.map((r) => ({ ...r, load: toNumber(r.load) ?? 0 }));
}

async function insertChoices(
  tx: DbOrTx,
  tenantId: string,
  rows: Array<{ subscriptionId: string; nodeId: string; role: string }>,
): Promise<number> {
  if (rows.length === 0) return 0;
  const inserted = await queryRows<{ n: unknown }>(
    tx,
    sql`WITH ins AS (
          INSERT INTO node_assignments (subscription_id, node_id, tenant_id, role, source)
          SELECT v.s, v.n, ${tenantId}, v.r, 'auto'
          FROM unnest(${sql.param(rows.map((r) => r.subscriptionId))}::text[],
                      ${sql.param(rows.map((r) => r.nodeId))}::text[],
                      ${sql.param(rows.map((r) => r.role))}::text[]) AS v(s, n, r)
          ON CONFLICT DO NOTHING RETURNING 1)
        SELECT count(*)::int AS n FROM ins`,
  );
  return toNumber(inserted[0]?.n) ?? 0;
}

/**
 * Assigns nodes to the given subscriptions that have no assignment yet (new subscriptions), by
 * their tenant's strategy. Returns the ids that got at least one node.
 */
export async function assignNewSubscriptions(tx: DbOrTx, subscriptionIds: string[]): Promise<string[]> {
  if (subscriptionIds.length === 0) return [];
  const subs = await queryRows<{ id: string; tenant_id: string; engines: string[] }>(
    tx,
    sql`SELECT s.id, s.tenant_id, s.engines FROM subscriptions s
        WHERE s.id = ANY(${sql.param(subscriptionIds)}::text[])
          AND NOT EXISTS (SELECT 1 FROM node_assignments a WHERE a.subscription_id = s.id)
        ORDER BY s.tenant_id, s.id`,
  );
  const byTenant = new Map<string, typeof subs>();
  for (const s of subs) {
    const list = byTenant.get(s.tenant_id);
    if (list) list.push(s);
    else byTenant.set(s.tenant_id, [s]);
  }
  const assigned = new Set<string>();
  for (const [tenantId, list] of byTenant) {
    const policy = await lockPolicy(tx, tenantId);
    if (policy.strategy === "manual") continue;
    const nodes = await candidates(
      tx,
      tenantId,
      policy.strategy === "by_tag" || policy.strategy === "by_capacity",
    );
    const rows: Array<{ subscriptionId: string; nodeId: string; role: string }> = [];
    for (const s of list) {
      for (const c of chooseNodes(policy, nodes, s.engines)) {
        rows.push({ subscriptionId: s.id, nodeId: c.nodeId, role: c.role });
        assigned.add(s.id);
      }
    }
    await insertChoices(tx, tenantId, rows);
    if (policy.strategy === "round_robin") {
      await tx.execute(sql`
        INSERT INTO node_assignment_policies (tenant_id, strategy, rr_cursor) VALUES (${tenantId}, 'round_robin', ${policy.cursor})
        ON CONFLICT (tenant_id) DO UPDATE SET rr_cursor = excluded.rr_cursor`);
    }
  }
  return [...assigned];
}

/**
 * With the 'all' strategy, a node that is new (or gained an engine) carries every subscription of
 * its tenant that shares an engine with it. Other strategies leave existing subscriptions where
 * they are. Returns the assignments written.
 */
export async function assignAllToNode(
  tx: DbOrTx,
  node: { id: string; tenantId: string; engines: readonly string[] },
): Promise<number> {
  const policy = await lockPolicy(tx, node.tenantId);
  if (policy.strategy !== "all") return 0;
  const rows = await queryRows<{ n: unknown }>(
    tx,
    sql`WITH ins AS (
          INSERT INTO node_assignments (subscription_id, node_id, tenant_id, role, source)
          SELECT s.id, ${node.id}, s.tenant_id, 'primary', 'auto' FROM subscriptions s
          WHERE s.tenant_id = ${node.tenantId} AND s.engines && ${sql.param([...node.engines])}::text[]
          ON CONFLICT DO NOTHING RETURNING 1)
        SELECT count(*)::int AS n FROM ins`,
  );
  return toNumber(rows[0]?.n) ?? 0;
}

/**
 * Rebalance of a tenant: with 'all', every subscription gets every eligible node it lacks (e.g. after
 * a node was added); with the other strategies, subscriptions without any node get one. Existing
 * assignments are never moved (moving users between nodes is an admin decision). Returns the number
 * of assignments written.
 */
export async function rebalanceTenant(tx: DbOrTx, tenantId: string): Promise<{ assigned: number }> {
  const policy = await lockPolicy(tx, tenantId);
  if (policy.strategy === "manual") return { assigned: 0 };
  if (policy.strategy === "all") {
    const rows = await queryRows<{ n: unknown }>(
      tx,
      sql`WITH ins AS (
            INSERT INTO node_assignments (subscription_id, node_id, tenant_id, role, source)
            SELECT s.id, n.id, s.tenant_id, 'primary', 'auto'
            FROM subscriptions s JOIN nodes n ON n.tenant_id = s.tenant_id AND n.status <> 'revoked'
            WHERE s.tenant_id = ${tenantId} AND s.engines && n.engines
            ON CONFLICT DO NOTHING RETURNING 1)
          SELECT count(*)::int AS n FROM ins`,
    );
    return { assigned: toNumber(rows[0]?.n) ?? 0 };
  }
  const ids = await queryRows<{ id: string }>(
    tx,
    sql`SELECT s.id FROM subscriptions s WHERE s.tenant_id = ${tenantId}
          AND NOT EXISTS (SELECT 1 FROM node_assignments a WHERE a.subscription_id = s.id)`,
  );
  const done = await assignNewSubscriptions(
    tx,
    ids.map((r) => r.id),
  );
  return { assigned: done.length };
}
