import { createHash } from "node:crypto";
import { AppError, notFound } from "@vpnpanel/common";
import { type Db, queryRows } from "@vpnpanel/db";
import { type SQL, sql } from "drizzle-orm";
import type { EngineName } from "../desired-state/desired-users";
import { publishIngestEffects } from "../ingest/effects";
import { ENGINE_CODES, IngestInputError, type Ingestor, type UsageSampleInput } from "../ingest/ingest";
import { loadNodeFor } from "../nodes/node-access";
import type { NodeBus } from "../nodes/node-bus";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { decodeCursor, encodeCursor } from "../shared/pagination";
import { toBigInt, toDate, toNumber } from "../shared/sql-values";

// Traffic over HTTP: the same batches as the gRPC stream (same ingest transaction, same dedupe on
// (node_id, seq)) for tools that cannot speak gRPC, and the tenant-scoped usage queries.
//
// Queries read hourly rollups for the hours the rollup job has covered (traffic_rollup_state
// .rolled_until) and raw rows after that, so they stay cheap on long ranges and exact on recent ones;
// before rolled_until the resolution is one hour.

const engineName = (code: unknown): EngineName | "unknown" =>
  Number(code) === 1 ? "xray" : Number(code) === 2 ? "wireguard" : "unknown";

export interface HttpBatch {
  nodeId: string;
  seq: bigint;
  sampledAt: Date;
  samples: Array<{ userId: string; engine: EngineName; uplinkBytes: bigint; downlinkBytes: bigint }>;
}

export interface TrafficFilter {
  from: Date;
  to: Date;
  subscriptionId?: string;
  userId?: string;
  nodeId?: string;
  engine?: EngineName;
}

export type GroupBy = "subscription" | "node" | "engine" | "hour" | "none";

export const hashApiKey = (key: string) => createHash("sha256").update(key, "utf8").digest("hex");

function checkRange(f: TrafficFilter) {
  if (!(f.from.getTime() < f.to.getTime())) {
    throw new AppError("validation_failed", "from must be before to", { field: "from" });
  }
  if (f.to.getTime() - f.from.getTime() > 400 * 86_400_000) {
    throw new AppError("validation_failed", "the range may span at most 400 days", { field: "to" });
  }
}

function filters(tenantId: string, f: TrafficFilter): SQL {
  const parts: SQL[] = [sql`tenant_id = ${tenantId}`];
  if (f.subscriptionId) parts.push(sql`subscription_id = ${f.subscriptionId}`);
  if (f.userId) {
    parts.push(
      sql`subscription_id IN (SELECT id FROM subscriptions WHERE user_id = ${f.userId} AND tenant_id = ${tenantId})`,
    );
  }
  if (f.nodeId) parts.push(sql`node_id = ${f.nodeId}`);
  if (f.engine) parts.push(sql`engine = ${ENGINE_CODES[f.engine]}`);
  return sql.join(parts, sql` AND `);
}

/** Rollup hours before rolled_until, raw rows from there on; columns (t, subscription_id, node_id, engine, up, down). */
function sourceSql(tenantId: string, f: TrafficFilter): SQL {
  const from = sql`${f.from.toISOString()}::timestamptz`;
  const to = sql`${f.to.toISOString()}::timestamptz`;
  const where = filters(tenantId, f);
  return sql`SELECT hour AS t, subscription_id, node_id, engine, up, down FROM traffic_rollups_hourly
      WHERE ${where} AND hour >= date_trunc('hour', ${from})
        AND hour < least(${to}, (SELECT rolled_until FROM traffic_rollup_state))
    UNION ALL
    SELECT date_trunc('hour', ts) AS t, subscription_id, node_id, engine, up, down FROM traffic_events
      WHERE ${where} AND ts >= greatest(${from}, (SELECT rolled_until FROM traffic_rollup_state)) AND ts < ${to}`;
}

const bytesOut = (up: unknown, down: unknown) => {
  const u = toBigInt(up) ?? 0n;
  const d = toBigInt(down) ?? 0n;
  return { upload_bytes: u.toString(), download_bytes: d.toString(), total_bytes: (u + d).toString() };
};

export function createTrafficService(deps: { db: Db; ingestor: Ingestor; bus: NodeBus }) {
  const { db, ingestor, bus } = deps;

  async function ingestFor(node: { id: string; tenantId: string }, batch: HttpBatch) {
    const samples: UsageSampleInput[] = batch.samples.map((s) => ({
      userId: s.userId,
      engine: ENGINE_CODES[s.engine],
      up: s.uplinkBytes,
      down: s.downlinkBytes,
    }));
    try {
      const result = await ingestor.ingest([
        {
          nodeId: node.id,
          tenantId: node.tenantId,
          seq: batch.seq,
          sampledAt: batch.sampledAt,
          samples,
          source: "http",
        },
      ]);
      await publishIngestEffects(db, bus, result).catch(() => {});
      const outcome = result.outcomes[0]!;
      return {
        seq: outcome.seq,
        duplicate: outcome.duplicate,
        counted: outcome.counted,
        skipped: outcome.skipped,
      };
    } catch (e) {
      if (e instanceof IngestInputError) throw new AppError("validation_failed", e.message, { field: "seq" });
      throw e;
    }
  }

  function scope(actor: Actor, tenantHint: string | undefined, permission: "traffic:read") {
    const tenantId = resolveTenant(actor, tenantHint);
    requireTenantPermission(actor, tenantId, permission);
    return tenantId;
  }

  return {
    /** An admin with traffic:write submits a batch for a node of a tenant they can write. */
    async submit(actor: Actor, batch: HttpBatch) {
      const node = await loadNodeFor(db, actor, batch.nodeId, "traffic:write");
      return ingestFor(node, batch);
    },

    /** A tool holding the node's API key submits a batch for that node only. */
    async submitWithNodeKey(apiKey: string, batch: Omit<HttpBatch, "nodeId">) {
      const rows = await queryRows<{ id: string; tenant_id: string }>(
        db,
        sql`SELECT id, tenant_id FROM nodes WHERE api_key_hash = ${hashApiKey(apiKey)} AND status <> 'revoked'`,
      );
      const node = rows[0];
      if (!node) throw new AppError("unauthenticated", "unknown or revoked node API key");
      return {
        nodeId: node.id,
        ...(await ingestFor({ id: node.id, tenantId: node.tenant_id }, { ...batch, nodeId: node.id })),
      };
    },

    async usage(
      actor: Actor,
      tenantHint: string | undefined,
      f: TrafficFilter,
      groupBy: GroupBy,
      limit: number,
    ) {
      const tenantId = scope(actor, tenantHint, "traffic:read");
      checkRange(f);
      const key =
        groupBy === "subscription"
          ? sql`subscription_id`
          : groupBy === "node"
            ? sql`node_id`
            : groupBy === "engine"
              ? sql`engine::text`
              : groupBy === "hour"
                ? sql`to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"')`
                : sql`'all'`;
      const order = groupBy === "hour" ? sql`key` : sql`sum(up) + sum(down) DESC, key`;
      const rows = await queryRows<{ key: string; up: unknown; down: unknown }>(
        db,
        sql`SELECT ${key} AS key, sum(up)::text AS up, sum(down)::text AS down
            FROM (${sourceSql(tenantId, f)}) src GROUP BY 1 ORDER BY ${order} LIMIT ${limit}`,
      );
      return {
        tenantId,
        items: rows.map((r) => ({
          key: groupBy === "engine" ? engineName(r.key) : r.key,
          ...bytesOut(r.up, r.down),
        })),
      };
    },

    async summary(actor: Actor, tenantHint: string | undefined, f: TrafficFilter) {
      const tenantId = scope(actor, tenantHint, "traffic:read");
      checkRange(f);
      const rows = await queryRows<{
        engine: unknown;
        node_id: string | null;
        g: number;
        up: unknown;
        down: unknown;
        subscriptions: unknown;
      }>(
        db,
        sql`SELECT engine, node_id, GROUPING(engine, node_id) AS g, sum(up)::text AS up, sum(down)::text AS down,
                   count(DISTINCT subscription_id) AS subscriptions
            FROM (${sourceSql(tenantId, f)}) src
            GROUP BY GROUPING SETS ((), (engine), (node_id))`,
      );
      const total = rows.find((r) => Number(r.g) === 3);
      return {
        tenantId,
        from: f.from,
        to: f.to,
        ...bytesOut(total?.up, total?.down),
        subscriptions: toNumber(total?.subscriptions) ?? 0,
        by_engine: rows
          .filter((r) => Number(r.g) === 1)
          .map((r) => ({ engine: engineName(r.engine), ...bytesOut(r.up, r.down) })),
        by_node: rows
          .filter((r) => Number(r.g) === 2)
          .map((r) => ({
            node_id: r.node_id,
            subscriptions: toNumber(r.subscriptions) ?? 0,
            ...bytesOut(r.up, r.down),
          }))
          .sort((a, b) => (BigInt(b.total_bytes) > BigInt(a.total_bytes) ? 1 : -1)),
      };
    },

    async rollups(
      actor: Actor,
      tenantHint: string | undefined,
      f: TrafficFilter,
      page: { limit: number; cursor?: string },
    ) {
      const tenantId = scope(actor, tenantHint, "traffic:read");
      checkRange(f);
      const where = [
        filters(tenantId, f),
        sql`hour >= date_trunc('hour', ${f.from.toISOString()}::timestamptz)`,
        sql`hour < ${f.to.toISOString()}::timestamptz`,
      ];
      if (page.cursor) {
        const [hour, node, sub, engine] = decodeCursor(page.cursor, "rollups").split("|");
        if (!hour || !node || !sub || !engine) {
          throw new AppError("validation_failed", "cursor is invalid for this listing", { field: "cursor" });
        }
        where.push(
          sql`(hour, node_id, subscription_id, engine) > (${hour}::timestamptz, ${node}, ${sub}, ${Number(engine)}::smallint)`,
        );
      }
      const rows = await queryRows<{
        hour: unknown;
        node_id: string;
        subscription_id: string;
        engine: unknown;
        up: unknown;
        down: unknown;
        samples: unknown;
      }>(
        db,
        sql`SELECT hour, node_id, subscription_id, engine, up::text AS up, down::text AS down, samples
            FROM traffic_rollups_hourly WHERE ${sql.join(where, sql` AND `)}
            ORDER BY hour, node_id, subscription_id, engine LIMIT ${page.limit + 1}`,
      );
      const items = rows.slice(0, page.limit).map((r) => ({
        hour: toDate(r.hour)!.toISOString(),
        node_id: r.node_id,
        subscription_id: r.subscription_id,
        engine: engineName(r.engine),
        samples: toNumber(r.samples) ?? 0,
        ...bytesOut(r.up, r.down),
      }));
      const last = rows[page.limit - 1];
      return {
        tenantId,
        items,
        nextCursor:
          rows.length > page.limit && last
            ? encodeCursor(
                "rollups",
                `${toDate(last.hour)!.toISOString()}|${last.node_id}|${last.subscription_id}|${Number(last.engine)}`,
              )
            : null,
      };
    },

    /** A subscription of the caller's tenant must exist for a per-subscription query to make sense. */
    async requireSubscription(tenantId: string, subscriptionId: string) {
      const rows = await queryRows<{ id: string }>(
        db,
        sql`SELECT id FROM subscriptions WHERE id = ${subscriptionId} AND tenant_id = ${tenantId}`,
      );
      if (rows.length === 0) throw notFound("subscription");
    },
  };
}

export type TrafficService = ReturnType<typeof createTrafficService>;
