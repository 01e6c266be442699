import {
  contextOf,
  expiresAt,
  holdDeadline,
  nextResetAt,
  type ResetAnchor,
  type SubscriptionState,
  transition,
} from "@vpnpanel/domain";
import type { Engine, HoldMode, PlanFields, PlanResetAnchor, PlanResetStrategy } from "../plans/plan-rules";

// A subscription's terms are copied from a plan (or given explicitly) and turned into a schedule:
// when the plan's clock starts, when it ends, when usage resets, or until when it may be held.
// Pure: the services and the scheduler compute schedules here and write them in one statement.

export interface Terms {
  planId: string | null;
  quotaBytes: bigint | null;
  durationSeconds: number | null;
  baseEngines: Engine[];
  resetStrategy: PlanResetStrategy;
  resetAnchor: PlanResetAnchor;
  holdMode: HoldMode;
  holdStartAt: Date | null;
  maxHoldSeconds: number | null;
  nextPlanId: string | null;
}

export interface Schedule {
  startedAt: Date | null;
  expiresAt: Date | null;
  holdDeadline: Date | null;
  nextResetAt: Date | null;
}

/** The SQL enum says "start" where the domain says "rolling" (periods counted from the start). */
export const domainAnchor = (a: PlanResetAnchor): ResetAnchor => (a === "calendar" ? "calendar" : "rolling");

/** The schedule of a plan whose clock starts at `start`. */
export function startedSchedule(
  t: Pick<Terms, "durationSeconds" | "resetStrategy" | "resetAnchor">,
  start: Date,
  explicitExpiry?: Date | null,
): Schedule {
  return {
    startedAt: start,
    expiresAt:
      explicitExpiry ??
      expiresAt(
        start,
        t.durationSeconds === null ? null : { seconds: t.durationSeconds },
        "duration_seconds",
      ),
    holdDeadline: null,
    nextResetAt: nextResetAt(t.resetStrategy, domainAnchor(t.resetAnchor), start, start),
  };
}

/** The schedule of a held subscription (its clock has not started); `heldSince` is when the hold began. */
export function heldSchedule(t: Pick<Terms, "holdStartAt" | "maxHoldSeconds">, heldSince: Date): Schedule {
  const deadline = holdDeadline(
    heldSince,
    { startAt: t.holdStartAt, maxHoldSeconds: t.maxHoldSeconds },
    "hold",
  );
  return { startedAt: null, expiresAt: null, holdDeadline: deadline?.at ?? null, nextResetAt: null };
}

/** A new subscription: held when the terms say so, else started now (or with an explicit end). */
export function initialSchedule(t: Terms, now: Date, explicitExpiry?: Date | null): Schedule {
  if (t.holdMode !== "none") return heldSchedule(t, now);
  return startedSchedule(t, now, explicitExpiry);
}

/** The state a new subscription settles in: the same rules as applying a plan (`change_plan`). */
export function initialState(quotaBytes: bigint | null, s: Schedule, now: Date): SubscriptionState {
  const r = transition(
    "active",
    "change_plan",
    contextOf({ usedBytes: 0n, quotaBytes, expiresAt: s.expiresAt, startedAt: s.startedAt }, now),
  );
  if (!r.ok || r.to === "deleted") throw new Error("change_plan always settles");
  return r.to;
}

/** A plan's terms as they are copied onto a subscription. */
export function termsOfPlan(plan: Omit<PlanFields, "name"> & { id: string }): Terms {
  return {
    planId: plan.id,
    quotaBytes: plan.quotaBytes,
    durationSeconds: plan.durationSeconds,
    baseEngines: plan.engines,
    resetStrategy: plan.resetStrategy,
    resetAnchor: plan.resetAnchor,
    holdMode: plan.holdMode,
    holdStartAt: plan.holdStartAt,
    maxHoldSeconds: plan.maxHoldSeconds,
    nextPlanId: plan.nextPlanId,
  };
}

/** Terms of a subscription created without a plan: unlimited, never expires, every engine. */
export const PLANLESS_TERMS: Terms = {
  planId: null,
  quotaBytes: null,
  durationSeconds: null,
  baseEngines: ["xray", "wireguard"],
  resetStrategy: "none",
  resetAnchor: "start",
  holdMode: "none",
  holdStartAt: null,
  maxHoldSeconds: null,
  nextPlanId: null,
};
