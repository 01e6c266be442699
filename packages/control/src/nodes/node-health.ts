import { type DbOrTx, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";

// What the collector records about a node's session in node_health (the row the API's
// /nodes/{id}/health reads). Small, separate writes: they never touch the wide nodes row.

/** What a Hello tells about the node: sent at session start, and again when it changes. */
export interface HelloFacts {
  agentVersion: string;
  bootId: string;
  capabilities: unknown[];
  wireguardInterfaces: unknown[];
}

export interface SessionStart extends HelloFacts {
  nodeId: string;
  collectorId: string;
  at: Date;
}

export interface HealthFacts {
  engines: unknown[];
  usageQueueDepth: number;
  oldestPendingUsage: Date | null;
  leaseState: string | null;
  loadAverage1m: number | null;
  memoryUsedBytes: bigint;
  memoryTotalBytes: bigint;
}

/** The node row a session needs: tenant, status, and the policy document. */
export async function sessionNode(
  db: DbOrTx,
  nodeId: string,
): Promise<{ tenantId: string; status: string; policy: Record<string, unknown> } | null> {
  const rows = await queryRows<{
    tenant_id: string;
    status: string;
    policy: Record<string, unknown> | string;
  }>(db, sql`SELECT tenant_id, status, policy FROM nodes WHERE id = ${nodeId}`);
  const r = rows[0];
  if (!r) return null;
  return {
    tenantId: r.tenant_id,
    status: r.status,
    policy: typeof r.policy === "string" ? JSON.parse(r.policy) : r.policy,
  };
}

export async function recordSessionStart(db: DbOrTx, s: SessionStart): Promise<void> {
  const at = s.at.toISOString();
  await db.execute(sql`
    INSERT INTO node_health (node_id, connected, collector_id, session_started_at, last_seen_at, agent_version,
                             boot_id, capabilities, wireguard_interfaces, updated_at)
    VALUES (${s.nodeId}, true, ${s.collectorId}, ${at}::timestamptz, ${at}::timestamptz, ${s.agentVersion},
            ${s.bootId}, ${JSON.stringify(s.capabilities)}::jsonb, ${JSON.stringify(s.wireguardInterfaces)}::jsonb, now())
    ON CONFLICT (node_id) DO UPDATE SET connected = true, collector_id = excluded.collector_id,
      session_started_at = excluded.session_started_at, last_seen_at = excluded.last_seen_at,
      agent_version = excluded.agent_version, boot_id = excluded.boot_id, capabilities = excluded.capabilities,
      wireguard_interfaces = excluded.wireguard_interfaces, updated_at = now()`);
}

/**
 * A Hello on an open session: the agent announces changed facts (its WireGuard interfaces exist only
 * once the node config reached it, after the session's first Hello) or asks for a resync.
 */
export async function recordHelloFacts(db: DbOrTx, nodeId: string, f: HelloFacts): Promise<void> {
  await db.execute(sql`UPDATE node_health SET agent_version = ${f.agentVersion}, boot_id = ${f.bootId},
      capabilities = ${JSON.stringify(f.capabilities)}::jsonb,
      wireguard_interfaces = ${JSON.stringify(f.wireguardInterfaces)}::jsonb, updated_at = now()
    WHERE node_id = ${nodeId}`);
}

export async function recordHealthReport(
  db: DbOrTx,
  nodeId: string,
  at: Date,
  h: HealthFacts,
): Promise<void> {
  await db.execute(sql`UPDATE node_health SET
      engine_status = ${JSON.stringify(h.engines)}::jsonb,
      usage_queue_depth = ${h.usageQueueDepth},
      oldest_pending_usage = ${h.oldestPendingUsage ? h.oldestPendingUsage.toISOString() : null}::timestamptz,
      lease_state = ${h.leaseState},
      load_average_1m = ${h.loadAverage1m},
      memory_used_bytes = ${h.memoryUsedBytes.toString()}::bigint,
      memory_total_bytes = ${h.memoryTotalBytes.toString()}::bigint,
      last_seen_at = ${at.toISOString()}::timestamptz, updated_at = now()
    WHERE node_id = ${nodeId}`);
}

export async function recordApplied(
  db: DbOrTx,
  nodeId: string,
  applied: bigint,
  failures: unknown[],
): Promise<void> {
  await db.execute(sql`UPDATE node_health
    SET applied_revision = greatest(applied_revision, ${applied.toString()}::bigint),
        apply_failures = ${JSON.stringify(failures)}::jsonb, updated_at = now()
    WHERE node_id = ${nodeId}`);
}

/** Only the collector that holds the session marks it closed (a newer session elsewhere stays open). */
export async function recordSessionEnd(db: DbOrTx, nodeId: string, collectorId: string): Promise<void> {
  await db.execute(sql`UPDATE node_health SET connected = false, updated_at = now()
    WHERE node_id = ${nodeId} AND collector_id = ${collectorId}`);
}

export async function recordLastSeen(
  db: DbOrTx,
  entries: Array<{ nodeId: string; at: Date }>,
): Promise<void> {
  if (entries.length === 0) return;
  await db.execute(sql`UPDATE node_health h SET last_seen_at = v.t
    FROM unnest(${sql.param(entries.map((e) => e.nodeId))}::text[],
                ${sql.param(entries.map((e) => e.at.toISOString()))}::timestamptz[]) AS v(id, t)
    WHERE h.node_id = v.id AND (h.last_seen_at IS NULL OR h.last_seen_at < v.t)`);
}
