import type { Clock } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import type { MemberChange } from "../desired-state/reconcile";
import { type EnforcementResult, enforceAfterUsage } from "../enforcement/enforcement";
import { sqlState } from "../shared/db-errors";
import { toBigInt } from "../shared/sql-values";
import { keepsRaw, type PartitionKeeper, utcDay } from "./partitions";

// Usage ingestion, exactly once (ARCHITECTURE.md §5.3). One transaction stores a group of batches
// (from one node or several) and adds them to the counters:
//   1. the counter rows of the samples' subscriptions are locked in subscription-id order, so
//      concurrent groups never deadlock on them (shared/research/limits.md §1); the same statement
//      says which subscriptions exist, in which tenant, and which to watch;
//   2. the watermark rows (node_id, seq) are inserted ON CONFLICT DO NOTHING: a batch whose row
//      exists (a replay) contributes nothing, and is reported as a duplicate;
//   3. one statement inserts the raw rows and adds the per-subscription sums (computed here) to the
//      counters, returning the subscriptions the new usage may move (quota reached, first use);
//   4. enforcement transitions them and reconciles the cut-off subscribers out of node desired
//      state, all before COMMIT.
// The caller acks a batch only after this returns, i.e. after commit. A crash anywhere before the
// commit leaves nothing behind; a crash after it leaves a watermark that turns the resend into a no-op.

export const MAX_BYTES = 2n ** 62n;
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
  quota: string | null;
  /** Serving with a quota: new usage may spend it. */
  watchQuota: boolean;
  /** on_hold until the first connection: new usage starts its clock. */
  watchFirstUse: boolean;
}

interface Agg {
  up: bigint;
  down: bigint;
  first: Date;
  last: Date;
}

function toKnown(
  r: { tenant_id: string; state: string; hold_mode: string; quota: unknown },
  hasCounter: boolean,
): Known {
  const quota = r.quota === null || r.quota === undefined ? null : String(r.quota);
  return {
    tenantId: r.tenant_id,
    hasCounter,
    quota,
    watchQuota: quota !== null && (r.state === "active" || r.state === "on_hold"),
    watchFirstUse: r.state === "on_hold" && r.hold_mode === "first_connection",
  };
}

interface Row {
  nodeId: string;
  seq: bigint;
  ts: Date;
  tenantId: string;
  sub: string;
  engine: number;
  up: bigint;
  down: bigint;
  keepRaw: boolean;
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
   * Locks the counter rows of these subscriptions in key order (so concurrent groups never deadlock
   * on them) and returns what the transaction needs to know about each: its tenant (samples for
   * another tenant's subscription are skipped), and whether new usage may move its state.
   */
  async function lockKnown(tx: DbOrTx, ids: string[]): Promise<Map<string, Known>> {
    if (ids.length === 0) return new Map();
    const param = sql`${sql.param(ids)}::text[]`;
    const rows = await queryRows<{
      id: string;
      tenant_id: string;
      state: string;
      hold_mode: string;
      quota: unknown;
    }>(
      tx,
      sql`SELECT su.subscription_id AS id, s.tenant_id, s.state, s.hold_mode, s.quota_bytes::text AS quota
          FROM unnest(${param}) AS v(id)
          JOIN subscription_usage su ON su.subscription_id = v.id
          JOIN subscriptions s ON s.id = v.id
          ORDER BY su.subscription_id FOR NO KEY UPDATE OF su`,
    );
    const known = new Map(rows.map((r) => [r.id, toKnown(r, true)]));
    if (known.size < ids.length) {
      // A subscription without a counter row (not written by the lifecycle services; kept working).
      const missing = ids.filter((id) => !known.has(id));
      const extra = await queryRows<{
        id: string;
        tenant_id: string;
        state: string;
        hold_mode: string;
        quota: unknown;
      }>(
        tx,
        sql`SELECT id, tenant_id, state, hold_mode, quota_bytes::text AS quota FROM subscriptions
            WHERE id = ANY(${sql.param(missing)}::text[])`,
      );
      for (const r of extra) known.set(r.id, toKnown(r, false));
    }
    return known;
  }

  async function run(batches: readonly UsageBatchInput[]): Promise<IngestResult> {
    const now = clock.now();
    const keep = new Map(batches.map((b) => [b, keepsRaw(b.sampledAt, now, deps.rawRetentionDays)]));
    await partitions.ensure(new Set(batches.filter((b) => keep.get(b)).map((b) => utcDay(b.sampledAt))));

    return db.transaction(async (tx) => {
      const candidateIds = new Set<string>();
      for (const b of batches)
        for (const s of b.samples) if (s.userId.length <= 64) candidateIds.add(s.userId);
      const known = await lockKnown(tx, [...candidateIds].sort());

      // Per batch: merge repeats of (subscription, engine); count what is skipped.
      const perBatch = batches.map((b) => {
        const merged = new Map<string, Row>();
        let skipped = 0;
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
          const key = `${s.userId}\u0000${s.engine}`;
          const row = merged.get(key);
          if (row) {
            row.up += s.up;
            row.down += s.down;
          } else {
            merged.set(key, {
              nodeId: b.nodeId,
              seq: b.seq,
              ts: b.sampledAt,
              tenantId: b.tenantId,
              sub: s.userId,
              engine: s.engine,
              up: s.up,
              down: s.down,
              keepRaw: keep.get(b) ?? false,
            });
          }
        }
        return { batch: b, rows: [...merged.values()], skipped };
      });

      const accepted = await queryRows<{ node_id: string; seq: unknown }>(
        tx,
        sql`INSERT INTO usage_batches (node_id, seq, sampled_at, samples, skipped, bytes, source)
            SELECT v.node_id, v.seq, v.ts, v.samples, v.skipped, v.bytes, v.source
            FROM unnest(${sql.param(perBatch.map((p) => p.batch.nodeId))}::text[],
                        ${sql.param(perBatch.map((p) => p.batch.seq.toString()))}::bigint[],
                        ${sql.param(perBatch.map((p) => p.batch.sampledAt.toISOString()))}::timestamptz[],
                        ${sql.param(perBatch.map((p) => p.rows.length))}::int[],
                        ${sql.param(perBatch.map((p) => p.skipped))}::int[],
                        ${sql.param(perBatch.map((p) => p.rows.reduce((t, r) => t + r.up + r.down, 0n).toString()))}::bigint[],
                        ${sql.param(perBatch.map((p) => p.batch.source ?? "grpc"))}::text[])
                 AS v(node_id, seq, ts, samples, skipped, bytes, source)
            WHERE v.seq > coalesce((SELECT f.floor_seq FROM node_usage_state f WHERE f.node_id = v.node_id), 0)
            ON CONFLICT (node_id, seq) DO NOTHING
            RETURNING node_id, seq::text AS seq`,
      );
      const fresh = new Set(accepted.map((a) => `${a.node_id}\u0000${toBigInt(a.seq)}`));
      const isFresh = (b: UsageBatchInput) => fresh.has(`${b.nodeId}\u0000${b.seq}`);
      const outcomes: BatchOutcome[] = perBatch.map((p) => ({
        nodeId: p.batch.nodeId,
        seq: p.batch.seq,
        duplicate: !isFresh(p.batch),
        counted: isFresh(p.batch) ? p.rows.length : 0,
        skipped: isFresh(p.batch) ? p.skipped : 0,
      }));
      const rows = perBatch.filter((p) => isFresh(p.batch)).flatMap((p) => p.rows);
      const empty = { transitions: [], cutOff: [], leaseChanged: [], changes: [], revisions: new Map() };
      if (rows.length === 0) return { outcomes, ...empty };

      // Per subscription over the whole group: the counters' increments, and what to watch for.
      const agg = new Map<string, Agg>();
      for (const r of rows) {
        const a = agg.get(r.sub);
        if (a) {
          a.up += r.up;
          a.down += r.down;
          if (r.ts < a.first) a.first = r.ts;
          if (r.ts > a.last) a.last = r.ts;
        } else {
          agg.set(r.sub, { up: r.up, down: r.down, first: r.ts, last: r.ts });
        }
      }
      const subs = [...agg.keys()].sort();
      const withoutCounter = subs.filter((s) => known.get(s)?.hasCounter === false);
      if (withoutCounter.length > 0) {
        await tx.execute(sql`INSERT INTO subscription_usage (subscription_id)
          SELECT unnest(${sql.param(withoutCounter)}::text[]) ON CONFLICT DO NOTHING`);
      }
      const col = <T>(f: (sub: string, a: Agg, k: Known) => T) =>
        sql.param(subs.map((s) => f(s, agg.get(s)!, known.get(s)!)));

      const moved = await queryRows<{ id: string; exhausted: boolean; first_use: boolean }>(
        tx,
        sql`WITH r AS (
              SELECT * FROM unnest(
                ${sql.param(rows.map((r) => r.nodeId))}::text[],
                ${sql.param(rows.map((r) => r.seq.toString()))}::bigint[],
                ${sql.param(rows.map((r) => r.ts.toISOString()))}::timestamptz[],
                ${sql.param(rows.map((r) => r.tenantId))}::text[],
                ${sql.param(rows.map((r) => r.sub))}::text[],
                ${sql.param(rows.map((r) => r.engine))}::smallint[],
                ${sql.param(rows.map((r) => r.up.toString()))}::bigint[],
                ${sql.param(rows.map((r) => r.down.toString()))}::bigint[],
                ${sql.param(rows.map((r) => r.keepRaw))}::boolean[])
              AS r(node_id, seq, ts, tenant_id, sub, engine, up, down, keep_raw)),
            ins AS (
              INSERT INTO traffic_events (ts, node_id, seq, subscription_id, tenant_id, engine, up, down)
              SELECT ts, node_id, seq, sub, tenant_id, engine, up, down FROM r WHERE keep_raw),
            a AS (
              SELECT * FROM unnest(
                ${sql.param(subs)}::text[],
                ${col((_, a) => a.up.toString())}::bigint[],
                ${col((_, a) => a.down.toString())}::bigint[],
                ${col((_, a) => a.first.toISOString())}::timestamptz[],
                ${col((_, a) => a.last.toISOString())}::timestamptz[],
                ${col((_, _a, k) => (k.watchQuota ? k.quota : null))}::bigint[],
                ${col((_, _a, k) => k.watchFirstUse)}::boolean[])
              AS a(sub, up, down, first_ts, last_ts, quota, first_use)),
            upd AS (
              UPDATE subscription_usage u SET
                used_bytes = u.used_bytes + a.up + a.down,
                upload_bytes = u.upload_bytes + a.up,
                download_bytes = u.download_bytes + a.down,
                lifetime_bytes = u.lifetime_bytes + a.up + a.down,
                first_used_at = coalesce(u.first_used_at, a.first_ts),
                last_used_at = greatest(u.last_used_at, a.last_ts)
              FROM a WHERE u.subscription_id = a.sub
              RETURNING u.subscription_id, u.used_bytes, a.quota, a.first_use)
            SELECT subscription_id AS id, (quota IS NOT NULL AND used_bytes >= quota) AS exhausted, first_use
            FROM upd WHERE (quota IS NOT NULL AND used_bytes >= quota) OR first_use`,
      );

      const enforced = await enforceAfterUsage(
        tx,
        {
          firstUse: moved.filter((m) => m.first_use && !m.exhausted).map((m) => m.id),
          exhausted: moved.filter((m) => m.exhausted).map((m) => m.id),
        },
        now,
      );
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
