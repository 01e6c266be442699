import type { DbOrTx } from "@vpnpanel/db";
import { queryRows } from "@vpnpanel/db";
import {
  allowedFrom,
  type Condition,
  type DomainEventName,
  outcomesOf,
  SUBSCRIPTION_STATES,
  type SubscriptionEvent,
  type SubscriptionState,
  transition,
} from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import type { Actor } from "../rbac/actor";
import { toNumber, tsParam } from "../shared/sql-values";

// The state machine of @vpnpanel/domain, compiled to SQL. A transition is ONE guarded UPDATE:
//   state = CASE state WHEN <from> THEN CASE WHEN <condition> THEN <to> … END … END
//   WHERE state IN (allowedFrom(event)) AND <that CASE> IS NOT NULL
// so a concurrent change of the row is re-checked by PostgreSQL (EvalPlanQual) instead of being
// overwritten, and the same statement serves one subscription or a million. Audit rows and outbox
// events are written by data-modifying CTEs of that same statement, from the rows it changed.
//
// Lock order: when the outcome depends on usage, the usage rows are locked first, in key order, by a
// materialized CTE — the order ingest uses (usage → subscription) — so the two never deadlock, and the
// usage the CASE sees is the latest committed one, not the statement snapshot's.

export type UpdateEvent = Exclude<SubscriptionEvent, "delete">;

/** SQL expressions for the facts as they will be AFTER the event's own field changes. */
export interface FactsSql {
  started: SQL;
  expiresAt: SQL;
  quotaBytes: SQL;
  usedBytes: SQL;
  now: SQL;
}

const lit = (s: string) => sql.raw(`'${s.replace(/'/g, "''")}'`);

function conditionSql(c: Condition, f: FactsSql): SQL {
  switch (c) {
    case "not_started":
      return sql`NOT (${f.started})`;
    case "time_expired":
      return sql`(${f.expiresAt} IS NOT NULL AND ${f.expiresAt} <= ${f.now})`;
    case "quota_exhausted":
      return sql`(${f.quotaBytes} IS NOT NULL AND ${f.usedBytes} >= ${f.quotaBytes})`;
  }
}

/** The outcome of `event` for the row's current state; NULL where the event does not apply. */
export function outcomeSql(event: UpdateEvent, f: FactsSql, state: SQL = sql`s.state`): SQL {
  const branches: SQL[] = [];
  for (const from of SUBSCRIPTION_STATES) {
    const outcomes = outcomesOf(event, from);
    if (!outcomes) continue;
    const inner = outcomes.map((o) => {
      if (o.to === "deleted") throw new Error(`${event} cannot delete through an UPDATE`);
      return sql`WHEN ${o.when ? conditionSql(o.when, f) : sql`true`} THEN ${lit(o.to)}`;
    });
    branches.push(sql`WHEN ${state} = ${lit(from)} THEN (CASE ${sql.join(inner, sql` `)} END)`);
  }
  return sql`(CASE ${sql.join(branches, sql` `)} END)`;
}

/** Whether any outcome of the event looks at the usage (then the usage rows are locked first). */
export function dependsOnUsage(event: UpdateEvent): boolean {
  return SUBSCRIPTION_STATES.some((s) =>
    (outcomesOf(event, s) ?? []).some((o) => o.when === "quota_exhausted"),
  );
}

const EVERY_CONDITION = { started: false, timeExpired: true, quotaExhausted: true };

/** The event's own domain event ("user.renewed" for renew); the same for every from-state. */
export function causeOf(event: SubscriptionEvent): DomainEventName {
  const from = allowedFrom(event)[0];
  const r = from ? transition(from, event, EVERY_CONDITION) : null;
  if (!r?.ok) throw new Error(`event ${event} has no transition`);
  return r.domainEvent;
}

/**
 * The second topic of a transition, as SQL over (prev, new): `user.limited` / `user.expired` when
 * the transition newly cuts the subscriber off — the rule of `transition().domainEvents`.
 */
export function cutOffTopicSql(event: SubscriptionEvent, prev: SQL, next: SQL): SQL {
  const cause = causeOf(event);
  return sql`CASE WHEN ${next} IN ('limited', 'expired') AND ${next} <> ${prev}
    AND 'user.' || ${next} <> ${lit(cause)} THEN 'user.' || ${next} END`;
}

export type RowValueType = "timestamptz" | "bigint" | "text" | "boolean";

/** Per-row values, joined to the UPDATE as `v` (v.id = s.id); their ids are the candidates. */
export interface RowValues {
  ids: string[];
  columns: Record<string, { type: RowValueType; values: Array<string | boolean | null> }>;
}

export interface TransitionSpec {
  event: UpdateEvent;
  /** A subquery yielding the candidate subscription ids (one text column); or `rows`. */
  candidates?: SQL;
  rows?: RowValues;
  now: Date;
  actor: Actor;
  /** The event's own field changes: column → expression over the old row `s` (and `u.used_bytes`). */
  set?: Partial<Record<SettableColumn, SQL>>;
  /** Zero the period usage (reset, renew, plan change); the facts then see used = 0. */
  resetUsage?: boolean;
  /** Extra guard, e.g. `s.expires_at <= now` so a repeated scheduler run is a no-op. */
  guard?: SQL;
  /** state_reason when the state changes (default: the event). */
  reason?: string | null;
  /** Extra fields merged into each event's payload (SQL jsonb over `upd`). */
  payload?: SQL;
  /** One audit row per changed subscription (default), or none (the caller writes one with a count). */
  audit?: { action: string; summary?: SQL } | "none";
  /** Return every changed row (default) or only the count (bulk). */
  returnRows?: boolean;
}

export type SettableColumn =
  | "quota_bytes"
  | "expires_at"
  | "started_at"
  | "duration_seconds"
  | "hold_deadline"
  | "hold_mode"
  | "next_reset_at"
  | "plan_id"
  | "engines"
  | "reset_strategy"
  | "reset_anchor"
  | "next_plan_id";

export interface TransitionRow {
  id: string;
  tenantId: string;
  userId: string;
  prevState: SubscriptionState;
  state: SubscriptionState;
  revision: number;
}

/** Runs one transition statement; returns the rows it changed (or only their count). */
export async function applyTransition(
  tx: DbOrTx,
  spec: TransitionSpec,
): Promise<{ count: number; rows: TransitionRow[] }> {
  const set = spec.set ?? {};
  const now = tsParam(spec.now);
  const lockUsage = spec.resetUsage || dependsOnUsage(spec.event);
  const facts: FactsSql = {
    started: set.started_at ? sql`(${set.started_at}) IS NOT NULL` : sql`s.started_at IS NOT NULL`,
    expiresAt: set.expires_at ? sql`(${set.expires_at})` : sql`s.expires_at`,
    quotaBytes: set.quota_bytes ? sql`(${set.quota_bytes})` : sql`s.quota_bytes`,
    usedBytes: spec.resetUsage ? sql`0::bigint` : sql`u.used_bytes`,
    now,
  };
  const outcome = outcomeSql(spec.event, facts);
  const allowed = allowedFrom(spec.event);
  const reason = spec.reason === undefined ? spec.event : spec.reason;
  const assignments = Object.entries(set).map(
    ([column, value]) => sql`${sql.identifier(column)} = ${value as SQL}`,
  );

  const ctes: SQL[] = [];
  let candidates = spec.candidates;
  if (spec.rows) {
    const cols = Object.entries(spec.rows.columns);
    const arrays = [
      sql`${sql.param(spec.rows.ids)}::text[]`,
      ...cols.map(([, c]) => sql`${sql.param(c.values)}::${sql.raw(c.type)}[]`),
    ];
    const names = ["id", ...cols.map(([name]) => name)].map((n) => sql.identifier(n));
    ctes.push(
      sql`v AS (SELECT * FROM unnest(${sql.join(arrays, sql`, `)}) AS t(${sql.join(names, sql`, `)}))`,
    );
    candidates = sql`SELECT v.id FROM v`;
  }
  if (!candidates) throw new Error("a transition needs candidates or rows");
  if (lockUsage) {
    // Materialized so it runs as its own scan: usage rows are locked in key order before (or as)
    // their subscriptions are, and the values it returns are the latest committed ones.
    ctes.push(sql`u AS MATERIALIZED (
      SELECT su.subscription_id AS id, su.used_bytes FROM subscription_usage su
      WHERE su.subscription_id IN (${candidates})
      ORDER BY su.subscription_id FOR NO KEY UPDATE)`);
  }
  const sources = [lockUsage ? sql`u` : null, spec.rows ? sql`v` : null].filter((x) => x !== null);
  const joins = [lockUsage ? sql`s.id = u.id` : null, spec.rows ? sql`s.id = v.id` : null].filter(
    (x) => x !== null,
  );
  const from = sources.length
    ? sql`FROM ${sql.join(sources, sql`, `)} WHERE ${sql.join(joins, sql` AND `)}`
    : sql`WHERE s.id IN (${candidates})`;
  ctes.push(sql`upd AS (
    UPDATE subscriptions s SET
      prev_state = s.state,
      state = ${outcome},
      state_reason = CASE WHEN ${outcome} <> s.state THEN ${reason}::text ELSE s.state_reason END,
      state_changed_at = CASE WHEN ${outcome} <> s.state THEN ${now} ELSE s.state_changed_at END,
      revision = s.revision + 1,
      updated_at = ${now}
      ${assignments.length ? sql`, ${sql.join(assignments, sql`, `)}` : sql``}
    ${from}
      AND s.state IN (${sql.join(allowed.map(lit), sql`, `)})
      AND ${outcome} IS NOT NULL
      ${spec.guard ? sql`AND (${spec.guard})` : sql``}
    RETURNING s.id, s.tenant_id, s.user_id, s.prev_state, s.state, s.revision)`);
  if (spec.resetUsage) {
    ctes.push(sql`reset AS (
      UPDATE subscription_usage su SET used_bytes = 0, upload_bytes = 0, download_bytes = 0
      FROM upd WHERE su.subscription_id = upd.id)`);
  }
  const payload = sql`jsonb_build_object('subscription_id', upd.id, 'user_id', upd.user_id,
    'state', upd.state, 'prev_state', upd.prev_state, 'revision', upd.revision)
    ${spec.payload ? sql`|| (${spec.payload})` : sql``}`;
  ctes.push(sql`ob AS (
    INSERT INTO outbox (tenant_id, topic, subject_id, payload)
    SELECT upd.tenant_id, t.topic, upd.id, ${payload}
    FROM upd CROSS JOIN LATERAL (VALUES
      (1, ${lit(causeOf(spec.event))}),
      (2, ${cutOffTopicSql(spec.event, sql`upd.prev_state`, sql`upd.state`)})) AS t(n, topic)
    WHERE t.topic IS NOT NULL
    ORDER BY upd.id, t.n)`);
  if (spec.audit !== "none") {
    const a = spec.audit ?? { action: `subscription.${spec.event}` };
    const summary = sql`jsonb_build_object('user_id', upd.user_id, 'state',
      jsonb_build_object('before', upd.prev_state, 'after', upd.state))
      ${a.summary ? sql`|| (${a.summary})` : sql``}`;
    ctes.push(sql`au AS (
      INSERT INTO audit_log (actor_type, actor_id, tenant_id, action, target_type, target_id,
                             request_id, source_ip, summary)
      SELECT ${spec.actor.kind === "system" ? "system" : "admin"}::text, ${spec.actor.id}::text, upd.tenant_id,
             ${a.action}::text, 'subscription', upd.id, ${spec.actor.requestId ?? null}::text,
             ${spec.actor.sourceIp ?? null}::text, ${summary}
      FROM upd)`);
  }
  const select =
    spec.returnRows === false
      ? sql`SELECT count(*)::int AS count FROM upd`
      : sql`SELECT id, tenant_id, user_id, prev_state, state, revision FROM upd ORDER BY id`;
  const rows = await queryRows<Record<string, unknown>>(tx, sql`WITH ${sql.join(ctes, sql`, `)} ${select}`);
  if (spec.returnRows === false) return { count: toNumber(rows[0]?.count) ?? 0, rows: [] };
  const out = rows.map((r) => ({
    id: String(r.id),
    tenantId: String(r.tenant_id),
    userId: String(r.user_id),
    prevState: r.prev_state as SubscriptionState,
    state: r.state as SubscriptionState,
    revision: toNumber(r.revision) ?? 0,
  }));
  return { count: out.length, rows: out };
}
