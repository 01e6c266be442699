import type { DbOrTx } from "@vpnpanel/db";
import { isServing } from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import { type MemberChange, reconcileMembers } from "../desired-state/reconcile";
import type { Actor } from "../rbac/actor";
import { applyTransition, type TransitionRow } from "../subscriptions/transition-sql";

// Enforcement inside the ingest transaction (ARCHITECTURE.md §5.4). After the usage counters moved:
// - on_hold subscriptions that start on first connection are activated (their clock starts at the
//   first usage this node saw), which may land them directly in limited or expired;
// - serving subscriptions whose usage reached the quota go to limited.
// Both are the domain state machine's guarded transitions (audit row and outbox event in the same
// statement). Subscribers cut off are then reconciled out of node_members in the same transaction,
// so the removal commands exist exactly once, whichever of this path or the outbox consumer gets
// there first; the collector sends them right after commit.

export const ingestActor: Actor = {
  kind: "system",
  id: "ingest",
  isPlatformOwner: true,
  memberships: new Map(),
};

export interface EnforcementCandidates {
  /** on_hold subscriptions with hold_mode first_connection that saw usage. */
  firstUse: string[];
  /** Serving subscriptions whose usage is at or over the quota. */
  exhausted: string[];
}

export interface EnforcementResult {
  transitions: TransitionRow[];
  /** Subscriptions that left the serving states. */
  cutOff: string[];
  /** Subscriptions whose lease (expiry) changed while staying served. */
  leaseChanged: string[];
  changes: MemberChange[];
  revisions: Map<string, bigint>;
}

const idList = (ids: readonly string[]): SQL => sql`SELECT unnest(${sql.param([...ids])}::text[])`;

// The clock of an on_hold subscription starts at its first usage (set by this transaction).
const firstUse = sql`(SELECT su.first_used_at FROM subscription_usage su WHERE su.subscription_id = s.id)`;
const startClock = (now: Date) => ({
  started_at: sql`coalesce(s.started_at, ${firstUse}, ${now.toISOString()}::timestamptz)`,
  expires_at: sql`CASE WHEN s.started_at IS NULL AND s.duration_seconds IS NOT NULL
    THEN coalesce(${firstUse}, ${now.toISOString()}::timestamptz) + s.duration_seconds * interval '1 second'
    ELSE s.expires_at END`,
});

export async function enforceAfterUsage(
  tx: DbOrTx,
  candidates: EnforcementCandidates,
  now: Date,
): Promise<EnforcementResult> {
  const all = [...new Set([...candidates.firstUse, ...candidates.exhausted])].sort();
  const result: EnforcementResult = {
    transitions: [],
    cutOff: [],
    leaseChanged: [],
    changes: [],
    revisions: new Map(),
  };
  if (all.length === 0) return result;
  // Subscription rows in key order, after the usage rows (the lifecycle's order too).
  await tx.execute(sql`SELECT id FROM subscriptions WHERE id = ANY(${sql.param(all)}::text[])
    ORDER BY id FOR UPDATE`);
  const payload = sql`jsonb_build_object('cause', 'usage')`;
  if (candidates.firstUse.length > 0) {
    const r = await applyTransition(tx, {
      event: "activate",
      candidates: idList(candidates.firstUse),
      now,
      actor: ingestActor,
      set: startClock(now),
      guard: sql`s.hold_mode = 'first_connection'`,
      reason: "first_connection",
      payload,
    });
    result.transitions.push(...r.rows);
  }
  if (candidates.exhausted.length > 0) {
    const r = await applyTransition(tx, {
      event: "quota_exceeded",
      candidates: idList(candidates.exhausted),
      now,
      actor: ingestActor,
      set: startClock(now),
      reason: "quota",
      payload,
    });
    result.transitions.push(...r.rows);
  }
  for (const t of result.transitions) {
    if (isServing(t.prevState) && !isServing(t.state)) result.cutOff.push(t.id);
    else if (isServing(t.state)) result.leaseChanged.push(t.id);
  }
  if (result.cutOff.length > 0) {
    const reconciled = await reconcileMembers(tx, { subscriptionIds: result.cutOff });
    result.changes = reconciled.changes;
    result.revisions = reconciled.revisions;
  }
  return result;
}
