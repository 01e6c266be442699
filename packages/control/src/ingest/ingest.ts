import type { Clock } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import type { MemberChange } from "../desired-state/reconcile";
import { type EnforcementResult, enforceAfterUsage } from "../enforcement/enforcement";
import { sqlState } from "../shared/db-errors";
import { arrayLiteral, toBigInt } from "../shared/sql-values";
import { keepsRaw, type PartitionKeeper, utcDay } from "./partitions";

// Usage ingestion, exactly once (ARCHITECTURE.md §5.3). One transaction stores a group of batches
// (from one node or several) and adds them to the counters, in two statements:
//   1. the counter rows of the samples' subscriptions are locked in subscription-id order, so
//      concurrent groups never deadlock on them (shared/research/limits.md §1); the same statement
//      returns only the exceptions: subscriptions of another tenant than the batch's or unknown
//      (their samples are skipped), and the few this usage may move (quota reached, first use), with
//      their locked counter;
//   2. one statement (data-modifying CTEs, one snapshot) inserts the watermark rows (node_id, seq)
//      ON CONFLICT DO NOTHING and, only for the batches whose row it inserted (a replay contributes
//      nothing and is reported as a duplicate), inserts the raw rows and adds the per-subscription
//      sums to the counters; it returns the fresh batches;
//   3. enforcement transitions the subscriptions whose locked counter plus what was counted reaches
//      the quota (or that saw their first use) and reconciles the cut-off subscribers out of node
//      desired state, all before COMMIT.
// Both statements look rows up by key one at a time (nested loops): the planner would otherwise cost
// 5,000 index probes as disk reads and scan and hash the whole counter or subscription table instead
// (≈ 50 ms per statement at 100,000 subscribers), although these rows are hot in the cache.
// The caller acks a batch only after this returns, i.e. after commit. A crash anywhere before the
// commit leaves nothing behind; a crash after it leaves a watermark that turns the resend into a no-op.

export const MAX_BYTES = 2n ** 62n;
/** From this many raw rows on, the counter update is pinned to key lookups (see the top). */
const PIN_PLAN_ROWS = 1000;
export const ENGINE_CODES = { xray: 1, wireguard: 2 } as const;

export interface UsageSampleInput {
  userId: string;
  /** Proto Engine number: 1 = xray, 2 = wireguard. Others are skipped. */
  engine: number;
  up: bigint;
  down: bigint;
}

export interface UsageBatchInput {
  nodeId: string;
  /** The node's tenant: samples for another tenant's subscription are skipped. */
  tenantId: string;
  seq: bigint;
  sampledAt: Date;
  samples: readonly UsageSampleInput[];
  source?: "grpc" | "http";
}

export interface BatchOutcome {
  nodeId: string;
  seq: bigint;
  duplicate: boolean;
  /** Samples counted (after merging repeats of a user and engine). */
  counted: number;
  /** Samples skipped: unknown or foreign subscription, bad engine, absurd value. */
  skipped: number;
}

export interface IngestResult extends Omit<EnforcementResult, "changes"> {
  outcomes: BatchOutcome[];
  changes: MemberChange[];
}

export class IngestInputError extends Error {}

interface Known {
  tenantId: string;
  hasCounter: boolean;
}

/** A subscription new usage may move: on_hold until first use, or a quota this group may reach. */
interface Watch {
  /** used_bytes when locked. */
  used: bigint;
  /** The quota, if it is serving with one. */
  quota: bigint | null;
  firstUse: boolean;
}

interface WatchRow {
  used: string | null;
  quota: string | null;
  first_use: boolean | null;
}

interface Row {
  /** Index (1-based) of the row's batch in the group. */
  batch: number;
  sub: string;
  engine: number;
  up: bigint;
  down: bigint;
}

/** Errors worth retrying: deadlock, serialization, a subscription deleted mid-transaction, connection loss. */
export function isPermanentIngestError(e: unknown): boolean {
  if (e instanceof IngestInputError) return true;
  const state = sqlState(e);
  if (!state) return false;
  if (state === "23503" || state === "40P01" || state === "40001") return false;
  return state.startsWith("22") || state.startsWith("23") || state.startsWith("42");
}

function validate(batch: UsageBatchInput): void {
  if (batch.seq <= 0n || batch.seq >= 2n ** 63n)
    throw new IngestInputError(`seq ${batch.seq} is out of range`);
  if (Number.isNaN(batch.sampledAt.getTime())) throw new IngestInputError("sampled_at is not a time");
}

export function createIngestor(deps: {
  db: Db;
  clock: Clock;
  partitions: PartitionKeeper;
  rawRetentionDays: number;
}) {
  const { db, clock, partitions } = deps;

  /**
   * Locks the counter rows of these subscriptions in key order, so concurrent groups never deadlock
   * on them, and finds out what the transaction needs to know about each: its tenant (samples for
   * another tenant's subscription, or an unknown one, are skipped) and whether this usage may move it
   * (on_hold until first use; serving with a quota that `upTo`, an upper bound of the bytes the group
   * adds, would reach). Only the exceptions come back: subscriptions not in the tenant `expected`
   * (the tenant of the first batch reporting them), without a counter row, or worth watching. The
   * counters stay locked until commit, so the locked used_bytes plus the bytes counted is the new value.
   */
  async function lockKnown(
    tx: DbOrTx,
    candidates: Map<string, { expected: string; upTo: bigint }>,
  ): Promise<{ known: Map<string, Known>; watch: Map<string, Watch> }> {
    const known = new Map<string, Known>();
    const watch = new Map<string, Watch>();
    if (candidates.size === 0) return { known, watch };
    const ids = [...candidates.keys()];
    const tenants = [...new Set([...candidates.values()].map((c) => c.expected))];
    const tenantIndex = new Map(tenants.map((t, i) => [t, i + 1]));
    const watchOf = (r: WatchRow): Watch => ({
      used: toBigInt(r.used) ?? 0n,
      quota: r.quota === null ? null : toBigInt(r.quota)!,
      firstUse: r.first_use === true,
    });
    // The sorted id list drives a nested loop (OFFSET 0 keeps the subquery and its order), so the
    // rows are locked in id order, each found through the primary keys.
    const rows = await queryRows<WatchRow & { id: string; tenant_id: string | null }>(
      tx,
      sql`SELECT v.id, l.tenant_id, l.used_bytes::text AS used,
            CASE WHEN l.state IN ('active', 'on_hold') THEN l.quota_bytes::text END AS quota,
            (l.state = 'on_hold' AND l.hold_mode = 'first_connection') AS first_use
          FROM (SELECT * FROM unnest(${arrayLiteral(ids)}::text::text[],
                                     ${arrayLiteral(ids.map((id) => tenantIndex.get(candidates.get(id)!.expected)!))}::text::int[],
                                     ${arrayLiteral(ids.map((id) => candidates.get(id)!.upTo))}::text::numeric[])
                  AS v(id, t, up_to) ORDER BY v.id OFFSET 0) v
          LEFT JOIN LATERAL (
            SELECT su.used_bytes, s.tenant_id, s.state, s.hold_mode, s.quota_bytes
            FROM subscription_usage su JOIN subscriptions s ON s.id = su.subscription_id
            WHERE su.subscription_id = v.id
            FOR NO KEY UPDATE OF su) l ON true
          WHERE l.tenant_id IS NULL
             OR l.tenant_id <> (${sql.param(tenants)}::text[])[v.t]
             OR (l.state = 'on_hold' AND l.hold_mode = 'first_connection')
             OR (l.quota_bytes IS NOT NULL AND l.state IN ('active', 'on_hold') AND l.used_bytes + v.up_to >= l.quota_bytes)`,
    );
    const missing: string[] = [];
    const other = new Map<string, string>();
    for (const r of rows) {
      if (r.tenant_id === null) missing.push(r.id);
      else {
        other.set(r.id, r.tenant_id);
        if (r.first_use === true || r.quota !== null) watch.set(r.id, watchOf(r));
      }
    }
    const absent = new Set(missing);
    for (const [id, c] of candidates)
      if (!absent.has(id)) known.set(id, { tenantId: other.get(id) ?? c.expected, hasCounter: true });
    if (missing.length > 0) {
      // A subscription without a counter row (not written by the lifecycle services; kept working).
      const extra = await queryRows<WatchRow & { id: string; tenant_id: string }>(
        tx,
        sql`SELECT id, tenant_id, '0' AS used,
              CASE WHEN state IN ('active', 'on_hold') THEN quota_bytes::text END AS quota,
              (state = 'on_hold' AND hold_mode = 'first_connection') AS first_use
            FROM subscriptions WHERE id = ANY(${sql.param(missing)}::text[])`,
      );
      for (const r of extra) {
        known.set(r.id, { tenantId: r.tenant_id, hasCounter: false });
        if (r.first_use === true || r.quota !== null) watch.set(r.id, watchOf(r));
      }
    }
    return { known, watch };
  }

  async function run(batches: readonly UsageBatchInput[]): Promise<IngestResult> {
    const now = clock.now();
    const keep = batches.map((b) => keepsRaw(b.sampledAt, now, deps.rawRetentionDays));
    await partitions.ensure(new Set(batches.filter((_, i) => keep[i]).map((b) => utcDay(b.sampledAt))));

    return db.transaction(async (tx) => {
      // Per candidate subscription: the tenant expected, and an upper bound of the bytes the group adds.
      const candidates = new Map<string, { expected: string; upTo: bigint }>();
      for (const b of batches)
        for (const s of b.samples) {
          if (s.userId.length > 64) continue;
          const n = s.up >= 0n && s.down >= 0n && s.up < MAX_BYTES && s.down < MAX_BYTES ? s.up + s.down : 0n;
          const c = candidates.get(s.userId);
          if (c) c.upTo += n;
          else candidates.set(s.userId, { expected: b.tenantId, upTo: n });
        }
      const { known, watch } = await lockKnown(tx, candidates);

      // Per batch: merge repeats of (subscription, engine); count what is skipped.
      const rows: Row[] = [];
      const perBatch = batches.map((b, index) => {
        const merged = new Map<string, Row>();
        let skipped = 0;
        let bytes = 0n;
        for (const s of b.samples) {
          const ok =
            known.get(s.userId)?.tenantId === b.tenantId &&
            (s.engine === 1 || s.engine === 2) &&
            s.up >= 0n &&
            s.down >= 0n &&
            s.up < MAX_BYTES &&
            s.down < MAX_BYTES;
          if (!ok) {
            skipped++;
            continue;
          }
          bytes += s.up + s.down;
          const key = `${s.userId}\u0000${s.engine}`;
          const row = merged.get(key);
          if (row) {
            row.up += s.up;
            row.down += s.down;
          } else {
            const fresh: Row = { batch: index + 1, sub: s.userId, engine: s.engine, up: s.up, down: s.down };
            merged.set(key, fresh);
            rows.push(fresh);
          }
        }
        return { batch: b, counted: merged.size, skipped, bytes };
      });

      // Subscriptions without a counter row get one (zero) before the counters are added to.
      const withoutCounter = [...known].filter(([, k]) => !k.hasCounter).map(([id]) => id);
      if (withoutCounter.length > 0) {
        await tx.execute(sql`INSERT INTO subscription_usage (subscription_id)
          SELECT unnest(${sql.param(withoutCounter.sort())}::text[]) ON CONFLICT DO NOTHING`);
      }

      // The counter UPDATE joins thousands of rows by key: keep the planner on index lookups (see the
      // top); small groups get those anyway and skip the round trips.
      const pinned = rows.length >= PIN_PLAN_ROWS;
      if (pinned) await tx.execute(sql`SELECT set_config('enable_hashjoin', 'off', true)`);
      const accepted = await queryRows<{ node_id: string; seq: unknown }>(
        tx,
        sql`WITH b AS (
              SELECT * FROM unnest(
                ${sql.param(perBatch.map((p) => p.batch.nodeId))}::text[],
                ${sql.param(perBatch.map((p) => p.batch.seq.toString()))}::bigint[],
                ${sql.param(perBatch.map((p) => p.batch.sampledAt.toISOString()))}::timestamptz[],
                ${sql.param(perBatch.map((p) => p.batch.tenantId))}::text[],
                ${sql.param(perBatch.map((p) => p.counted))}::int[],
                ${sql.param(perBatch.map((p) => p.skipped))}::int[],
                ${sql.param(perBatch.map((p) => p.bytes.toString()))}::bigint[],
                ${sql.param(perBatch.map((p) => p.batch.source ?? "grpc"))}::text[],
                ${sql.param(keep)}::boolean[]) WITH ORDINALITY
              AS b(node_id, seq, ts, tenant_id, samples, skipped, bytes, source, keep_raw, i)),
            ub AS (
              INSERT INTO usage_batches (node_id, seq, sampled_at, samples, skipped, bytes, source)
              SELECT b.node_id, b.seq, b.ts, b.samples, b.skipped, b.bytes, b.source FROM b
              WHERE b.seq > coalesce((SELECT f.floor_seq FROM node_usage_state f WHERE f.node_id = b.node_id), 0)
              ON CONFLICT (node_id, seq) DO NOTHING
              RETURNING node_id, seq),
            r AS (
              SELECT b.ts, b.node_id, b.seq, b.tenant_id, b.keep_raw, r.sub, r.engine, r.up, r.down
              FROM unnest(
                ${arrayLiteral(rows.map((r) => r.batch))}::text::int[],
                ${arrayLiteral(rows.map((r) => r.sub))}::text::text[],
                ${arrayLiteral(rows.map((r) => r.engine))}::text::smallint[],
                ${arrayLiteral(rows.map((r) => r.up))}::text::bigint[],
                ${arrayLiteral(rows.map((r) => r.down))}::text::bigint[])
              AS r(batch, sub, engine, up, down)
              JOIN b ON b.i = r.batch
              JOIN ub ON ub.node_id = b.node_id AND ub.seq = b.seq),
            ins AS (
              INSERT INTO traffic_events (ts, node_id, seq, subscription_id, tenant_id, engine, up, down)
              SELECT ts, node_id, seq, sub, tenant_id, engine, up, down FROM r WHERE keep_raw),
            a AS (
              SELECT sub, sum(up)::bigint AS up, sum(down)::bigint AS down, min(ts) AS first_ts, max(ts) AS last_ts
              FROM r GROUP BY sub),
            upd AS (
              UPDATE subscription_usage u SET
                used_bytes = u.used_bytes + a.up + a.down,
                upload_bytes = u.upload_bytes + a.up,
                download_bytes = u.download_bytes + a.down,
                lifetime_bytes = u.lifetime_bytes + a.up + a.down,
                first_used_at = coalesce(u.first_used_at, a.first_ts),
                last_used_at = greatest(u.last_used_at, a.last_ts)
              FROM a WHERE u.subscription_id = a.sub)
            SELECT node_id, seq::text AS seq FROM ub`,
      );

      const fresh = new Set(accepted.map((a) => `${a.node_id}\u0000${toBigInt(a.seq)}`));
      const outcomes: BatchOutcome[] = perBatch.map((p) => {
        const isFresh = fresh.has(`${p.batch.nodeId}\u0000${p.batch.seq}`);
        return {
          nodeId: p.batch.nodeId,
          seq: p.batch.seq,
          duplicate: !isFresh,
          counted: isFresh ? p.counted : 0,
          skipped: isFresh ? p.skipped : 0,
        };
      });

      // What moves: a watched subscription with counted usage (its locked counter plus what was added).
      const added = new Map<string, bigint>();
      for (const r of rows) {
        if (!watch.has(r.sub) || outcomes[r.batch - 1]!.duplicate) continue;
        added.set(r.sub, (added.get(r.sub) ?? 0n) + r.up + r.down);
      }
      const firstUse: string[] = [];
      const exhausted: string[] = [];
      for (const [id, bytes] of added) {
        const w = watch.get(id)!;
        if (w.quota !== null && w.used + bytes >= w.quota) exhausted.push(id);
        else if (w.firstUse) firstUse.push(id);
      }
      if (pinned && firstUse.length + exhausted.length > 0)
        await tx.execute(sql`SELECT set_config('enable_hashjoin', 'on', true)`);
      const enforced = await enforceAfterUsage(tx, { firstUse, exhausted }, now);
      return { outcomes, ...enforced };
    });
  }

  return {
    /** Stores and counts the batches in one transaction; retries deadlocks and deletion races a few times. */
    async ingest(batches: readonly UsageBatchInput[]): Promise<IngestResult> {
      const keys = new Set<string>();
      for (const b of batches) {
        validate(b);
        // Two copies of one batch in one call would share one watermark row but both look new.
        const key = `${b.nodeId}\u0000${b.seq}`;
        if (keys.has(key)) throw new IngestInputError(`batch ${b.nodeId}/${b.seq} appears twice in one call`);
        keys.add(key);
      }
      for (let attempt = 1; ; attempt++) {
        try {
          return await run(batches);
        } catch (e) {
          const state = sqlState(e);
          if (attempt < 5 && (state === "40P01" || state === "40001" || state === "23503")) continue;
          throw e;
        }
      }
    },
  };
}

export type Ingestor = ReturnType<typeof createIngestor>;
