import type { Clock } from "@vpnpanel/common";
import { type Db, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { reconcileMembers } from "../desired-state/reconcile";
import { toBigInt, toDate, toNumber } from "../shared/sql-values";

// Time-driven maintenance of the traffic and desired-state tables. Every function is idempotent and
// safe to run on any replica (the scheduler runs each under a lock); `trafficJobs` lists them with
// their cadence for the scheduler role.

const DAY_MS = 86_400_000;

export interface TrafficMaintenanceSettings {
  rawRetentionDays: number;
  rollupRetentionMonths: number;
  /** Watermark rows older than this are folded into the per-node floor. */
  batchRetentionDays?: number;
  /** Change-log rows older than this are pruned (a node further behind gets a snapshot). */
  changeRetentionDays?: number;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export function createTrafficMaintenance(deps: {
  db: Db;
  clock: Clock;
  settings: TrafficMaintenanceSettings;
}) {
  const { db, clock, settings } = deps;

  return {
    /** Daily raw partitions from yesterday to `daysAhead` days ahead, monthly rollup partitions. */
    async ensurePartitions(daysAhead = 3): Promise<{ created: number }> {
      const from = new Date(clock.now().getTime() - DAY_MS);
      const rows = await queryRows<{ n: unknown }>(
        db,
        sql`SELECT traffic_ensure_partitions(${day(from)}::date, ${daysAhead + 1}) AS n`,
      );
      return { created: toNumber(rows[0]?.n) ?? 0 };
    },

    /** Drops raw partitions past raw retention and rollup partitions past rollup retention. */
    async dropExpiredPartitions(): Promise<{ dropped: string[] }> {
      const now = clock.now();
      const eventsBefore = new Date(now.getTime() - settings.rawRetentionDays * DAY_MS);
      const rollupsBefore = new Date(
        Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - settings.rollupRetentionMonths, 1),
      );
      const rows = await queryRows<{ dropped: string[] | string }>(
        db,
        sql`SELECT traffic_drop_partitions(${day(eventsBefore)}::date, ${day(rollupsBefore)}::date) AS dropped`,
      );
      const dropped = rows[0]?.dropped ?? [];
      return {
        dropped:
          typeof dropped === "string" ? dropped.replace(/[{}]/g, "").split(",").filter(Boolean) : dropped,
      };
    },

    /**
     * Hourly rollups: recomputes, from the raw rows, every hour that received a batch since the last
     * run (found by the batches' transaction ids, so a late commit is picked up by the next run).
     * Hours older than raw retention are left alone: their raw rows are gone.
     */
    async rollupHourly(): Promise<{ hours: number; rows: number }> {
      const now = clock.now();
      const oldest = new Date(now.getTime() - settings.rawRetentionDays * DAY_MS);
      const hours = await db.transaction(async (tx) => {
        const [state] = await queryRows<{ last_txid: string }>(
          tx,
          sql`SELECT last_txid::text AS last_txid FROM traffic_rollup_state FOR UPDATE`,
        );
        const [horizon] = await queryRows<{ xmin: string }>(
          tx,
          sql`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`,
        );
        const touched = await queryRows<{ hour: unknown }>(
          tx,
          sql`SELECT DISTINCT date_trunc('hour', sampled_at) AS hour FROM usage_batches
              WHERE txid >= ${state?.last_txid ?? "0"}::xid8 AND txid < ${horizon!.xmin}::xid8
                AND sampled_at >= ${oldest.toISOString()}::timestamptz
              ORDER BY 1`,
        );
        let rows = 0;
        for (const t of touched) {
          const hour = toDate(t.hour)!;
          await tx.execute(
            sql`DELETE FROM traffic_rollups_hourly WHERE hour = ${hour.toISOString()}::timestamptz`,
          );
          const inserted = await queryRows<{ n: unknown }>(
            tx,
            sql`WITH ins AS (
                  INSERT INTO traffic_rollups_hourly (hour, tenant_id, node_id, subscription_id, engine, up, down, samples)
                  SELECT ${hour.toISOString()}::timestamptz, tenant_id, node_id, subscription_id, engine,
                         sum(up), sum(down), count(*)
                  FROM traffic_events
                  WHERE ts >= ${hour.toISOString()}::timestamptz
                    AND ts < ${hour.toISOString()}::timestamptz + interval '1 hour'
                  GROUP BY tenant_id, node_id, subscription_id, engine
                  RETURNING 1)
                SELECT count(*)::int AS n FROM ins`,
          );
          rows += toNumber(inserted[0]?.n) ?? 0;
        }
        await tx.execute(sql`UPDATE traffic_rollup_state SET last_txid = ${horizon!.xmin}::xid8,
          rolled_until = greatest(rolled_until, date_trunc('hour', ${now.toISOString()}::timestamptz)),
          updated_at = now()`);
        return { hours: touched.length, rows };
      });
      return hours;
    },

    /**
     * Folds old watermark rows into node_usage_state.floor_seq: the floor moves only over a gap-free
     * run of stored seqs, all older than the retention, so a batch still in an agent's queue (a gap)
     * is never mistaken for a replay.
     */
    async pruneUsageBatches(): Promise<{ pruned: number }> {
      const cutoff = new Date(clock.now().getTime() - (settings.batchRetentionDays ?? 7) * DAY_MS);
      const rows = await queryRows<{ n: unknown }>(
        db,
        sql`WITH f AS (
              SELECT n.node_id, coalesce(s.floor_seq, 0) AS base
              FROM (SELECT DISTINCT node_id FROM usage_batches) n
              LEFT JOIN node_usage_state s ON s.node_id = n.node_id),
            o AS (
              SELECT b.node_id, b.seq, f.base,
                     row_number() OVER (PARTITION BY b.node_id ORDER BY b.seq) AS rn,
                     bool_and(b.received_at < ${cutoff.toISOString()}::timestamptz)
                       OVER (PARTITION BY b.node_id ORDER BY b.seq) AS old_prefix
              FROM usage_batches b JOIN f ON f.node_id = b.node_id WHERE b.seq > f.base),
            nf AS (SELECT node_id, max(seq) AS new_floor FROM o WHERE seq - base = rn AND old_prefix GROUP BY node_id),
            up AS (
              INSERT INTO node_usage_state (node_id, floor_seq) SELECT node_id, new_floor FROM nf
              ON CONFLICT (node_id) DO UPDATE SET floor_seq = greatest(node_usage_state.floor_seq, excluded.floor_seq)
              RETURNING node_id, floor_seq),
            del AS (DELETE FROM usage_batches b USING up WHERE b.node_id = up.node_id AND b.seq <= up.floor_seq RETURNING 1)
          SELECT count(*)::int AS n FROM del`,
      );
      return { pruned: toNumber(rows[0]?.n) ?? 0 };
    },

    /** Prunes the desired-state change log; raises each node's floor past what was pruned. */
    async pruneNodeChanges(): Promise<{ pruned: number }> {
      const cutoff = new Date(clock.now().getTime() - (settings.changeRetentionDays ?? 7) * DAY_MS);
      const rows = await queryRows<{ n: unknown }>(
        db,
        sql`WITH del AS (DELETE FROM node_changes WHERE at < ${cutoff.toISOString()}::timestamptz
                         RETURNING node_id, revision),
            fl AS (UPDATE node_revisions r SET floor_revision = greatest(r.floor_revision, d.revision)
                   FROM (SELECT node_id, max(revision) AS revision FROM del GROUP BY node_id) d
                   WHERE r.node_id = d.node_id RETURNING 1)
          SELECT count(*)::int AS n FROM del`,
      );
      return { pruned: toNumber(rows[0]?.n) ?? 0 };
    },

    /**
     * Anti-entropy: reconciles every node's desired state from scratch (a missed event, a manual SQL
     * fix). Returns the nodes whose revision moved, for the caller to publish.
     */
    async reconcileAllNodes(): Promise<{ nodes: Map<string, bigint>; changes: number }> {
      const ids = await queryRows<{ id: string }>(db, sql`SELECT id FROM nodes ORDER BY id`);
      const nodes = new Map<string, bigint>();
      let changes = 0;
      for (const { id } of ids) {
        const r = await db.transaction((tx) => reconcileMembers(tx, { nodeId: id }));
        changes += r.changes.length;
        for (const [n, rev] of r.revisions) nodes.set(n, rev);
      }
      return { nodes, changes };
    },

    /** The node's latest stored batch (usage lag in health). */
    async lastBatch(nodeId: string): Promise<{ seq: bigint; sampledAt: Date; receivedAt: Date } | null> {
      const rows = await queryRows<{ seq: unknown; sampled_at: unknown; received_at: unknown }>(
        db,
        sql`SELECT seq::text AS seq, sampled_at, received_at FROM usage_batches
            WHERE node_id = ${nodeId} ORDER BY seq DESC LIMIT 1`,
      );
      const r = rows[0];
      if (!r) return null;
      return {
        seq: toBigInt(r.seq) ?? 0n,
        sampledAt: toDate(r.sampled_at)!,
        receivedAt: toDate(r.received_at)!,
      };
    },
  };
}

export type TrafficMaintenance = ReturnType<typeof createTrafficMaintenance>;

/**
 * The jobs for the scheduler role ({ name, intervalMs, run }, the shape apps/scheduler runs under a
 * lock, one replica at a time). `publishChanged` tells collectors about nodes the anti-entropy
 * reconciliation changed.
 */
export function trafficJobs(m: TrafficMaintenance, publishChanged?: (nodeIds: string[]) => Promise<void>) {
  const minutes = (n: number) => n * 60_000;
  return [
    { name: "traffic.partitions.ensure", intervalMs: minutes(60), run: () => m.ensurePartitions() },
    { name: "traffic.partitions.drop", intervalMs: minutes(60), run: () => m.dropExpiredPartitions() },
    { name: "traffic.rollup.hourly", intervalMs: minutes(5), run: () => m.rollupHourly() },
    { name: "traffic.batches.prune", intervalMs: minutes(60), run: () => m.pruneUsageBatches() },
    { name: "nodes.changes.prune", intervalMs: minutes(60), run: () => m.pruneNodeChanges() },
    {
      name: "nodes.reconcile",
      intervalMs: minutes(60),
      run: async () => {
        const r = await m.reconcileAllNodes();
        if (publishChanged && r.nodes.size) await publishChanged([...r.nodes.keys()]);
        return { nodes: r.nodes.size, changes: r.changes };
      },
    },
  ];
}
