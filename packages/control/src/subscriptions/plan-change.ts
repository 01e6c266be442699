import type { schema } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import type { Actor } from "../rbac/actor";
import { bigParam } from "../shared/sql-values";
import { heldSchedule, type Schedule, startedSchedule, termsOfPlan } from "./terms";
import type { RowValues, TransitionSpec } from "./transition-sql";

// Schedules computed by the domain's period rules travel into the transition statement as per-row
// values; the guard `(started_at IS NOT NULL) = v.was_started` makes a row whose clock started in the
// meantime (first connection) fall out of the statement instead of getting a schedule for a held row.

export interface ScheduledRow {
  id: string;
  schedule: Schedule;
  wasStarted: boolean;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function scheduleRows(rows: ScheduledRow[]): RowValues {
  return {
    ids: rows.map((r) => r.id),
    columns: {
      started_at: { type: "timestamptz", values: rows.map((r) => iso(r.schedule.startedAt)) },
      expires_at: { type: "timestamptz", values: rows.map((r) => iso(r.schedule.expiresAt)) },
      hold_deadline: { type: "timestamptz", values: rows.map((r) => iso(r.schedule.holdDeadline)) },
      next_reset_at: { type: "timestamptz", values: rows.map((r) => iso(r.schedule.nextResetAt)) },
      was_started: { type: "boolean", values: rows.map((r) => r.wasStarted) },
    },
  };
}

export const scheduleSet = {
  started_at: sql`v.started_at`,
  expires_at: sql`v.expires_at`,
  hold_deadline: sql`v.hold_deadline`,
  next_reset_at: sql`v.next_reset_at`,
};
export const scheduleGuard = sql`(s.started_at IS NOT NULL) = v.was_started`;

type PlanRow = typeof schema.plans.$inferSelect;

/**
 * Puts subscriptions on `plan`: its terms are copied, a started subscription (or any, when the plan
 * does not hold) starts a new period at its `startAt`, a held one keeps waiting under the plan's hold
 * rule from `now`. Usage is zeroed unless `resetUsage` is false.
 */
export function planChangeSpec(
  plan: PlanRow,
  rows: Array<{ id: string; started: boolean; startAt: Date }>,
  opts: { now: Date; actor: Actor; resetUsage: boolean; audit?: TransitionSpec["audit"]; reason?: string },
): TransitionSpec {
  const terms = termsOfPlan(plan);
  const scheduled = rows.map((r) => ({
    id: r.id,
    wasStarted: r.started,
    schedule:
      r.started || terms.holdMode === "none"
        ? startedSchedule(terms, r.startAt)
        : heldSchedule(terms, opts.now),
  }));
  return {
    event: "change_plan",
    rows: scheduleRows(scheduled),
    now: opts.now,
    actor: opts.actor,
    resetUsage: opts.resetUsage,
    set: {
      ...scheduleSet,
      plan_id: sql`${plan.id}::text`,
      quota_bytes: bigParam(plan.quotaBytes),
      duration_seconds: sql`${plan.durationSeconds}::bigint`,
      engines: sql`${sql.param(plan.engines)}::text[]`,
      reset_strategy: sql`${plan.resetStrategy}::text`,
      reset_anchor: sql`${plan.resetAnchor}::text`,
      hold_mode: sql`${plan.holdMode}::text`,
      next_plan_id: sql`${plan.nextPlanId}::text`,
    },
    guard: scheduleGuard,
    payload: sql`jsonb_build_object('plan_id', ${plan.id}::text)`,
    ...(opts.audit ? { audit: opts.audit } : {}),
    ...(opts.reason ? { reason: opts.reason } : {}),
  };
}
