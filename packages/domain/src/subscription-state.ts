import { isExhausted } from "./quota";

// The subscription state machine as data. Each transition is applied by one SQL statement guarded
// by `state IN (allowedFrom(event))`, so concurrent transitions cannot lose an update; the outcome
// rules below are ordered predicates that translate one-to-one into a SQL `CASE`.
//
// The model: apart from `disabled` (a sticky admin decision), a subscription's state follows from
// its facts — started or not, time left or not, bytes left or not. Admin edits (renew, reset,
// quota, plan) change facts and then "settle" to whatever state those facts imply; a disabled
// subscription keeps its edits and settles only when it is enabled.

export const SUBSCRIPTION_STATES = ["on_hold", "active", "limited", "expired", "disabled"] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export const SUBSCRIPTION_EVENTS = [
  "activate", // first connection, or the fixed start date reached
  "hold_timeout", // the maximum on-hold time passed: the plan starts anyway
  "quota_exceeded", // ingest pushed usage to the quota
  "expired", // expires_at passed (scheduler)
  "disable", // admin
  "enable", // admin
  "renew", // new expiry / new plan period
  "reset_usage", // admin or the periodic data-limit reset
  "raise_quota", // admin sets a new quota (lowering it is allowed and may limit)
  "change_plan", // admin or the next-plan switch
  "delete",
] as const;
export type SubscriptionEvent = (typeof SUBSCRIPTION_EVENTS)[number];

export type TransitionTarget = SubscriptionState | "deleted";

/**
 * Facts the outcome depends on, as they are AFTER the event's own field changes (a renew's new
 * expiry, a reset's zero usage, a new plan's quota). SQL twins:
 * - not_started: `started_at IS NULL`
 * - time_expired: `expires_at IS NOT NULL AND expires_at <= now`
 * - quota_exhausted: `quota_bytes IS NOT NULL AND used_bytes >= quota_bytes`
 */
export const CONDITIONS = ["not_started", "time_expired", "quota_exhausted"] as const;
export type Condition = (typeof CONDITIONS)[number];

/** One candidate outcome; a cell's outcomes are tried in order and the first whose `when` holds wins. */
export interface Outcome {
  readonly when?: Condition;
  readonly to: TransitionTarget;
}

export interface TransitionContext {
  started: boolean;
  timeExpired: boolean;
  quotaExhausted: boolean;
}

// Expiry outranks the quota: an expired plan needs a renewal, and the periodic data-limit reset
// (which fixes `limited`) must never bring an expired subscription back.
const SETTLE: readonly Outcome[] = [
  { when: "not_started", to: "on_hold" },
  { when: "time_expired", to: "expired" },
  { when: "quota_exhausted", to: "limited" },
  { to: "active" },
];
// Starting the clock: the service has just set started_at, so not_started is not consulted.
const START: readonly Outcome[] = SETTLE.slice(1);
const STAY_DISABLED: readonly Outcome[] = [{ to: "disabled" }];
const LIMIT: readonly Outcome[] = [{ when: "quota_exhausted", to: "limited" }];
const EXPIRE: readonly Outcome[] = [{ when: "time_expired", to: "expired" }];
const DISABLE: readonly Outcome[] = [{ to: "disabled" }];
const DELETE: readonly Outcome[] = [{ to: "deleted" }];
const EDIT = {
  on_hold: SETTLE,
  active: SETTLE,
  limited: SETTLE,
  expired: SETTLE,
  disabled: STAY_DISABLED,
} as const;

/** event → from-state → ordered outcomes. A missing from-state means the event is not allowed there. */
export const TRANSITIONS = {
  activate: { on_hold: START },
  hold_timeout: { on_hold: START },
  // on_hold is served, so a first batch can spend the whole quota before `activate` is applied.
  quota_exceeded: { on_hold: LIMIT, active: LIMIT },
  // A limited subscription still expires, so a later usage reset cannot revive it.
  expired: { on_hold: EXPIRE, active: EXPIRE, limited: EXPIRE },
  disable: { on_hold: DISABLE, active: DISABLE, limited: DISABLE, expired: DISABLE },
  enable: { disabled: SETTLE },
  renew: EDIT,
  reset_usage: EDIT,
  raise_quota: EDIT,
  change_plan: EDIT,
  delete: { on_hold: DELETE, active: DELETE, limited: DELETE, expired: DELETE, disabled: DELETE },
} as const satisfies Record<SubscriptionEvent, Partial<Record<SubscriptionState, readonly Outcome[]>>>;

/** States whose users nodes must carry. on_hold is served: its first connection is what starts it. */
export const SERVING_STATES = ["on_hold", "active"] as const satisfies readonly SubscriptionState[];

export function isServing(state: SubscriptionState): boolean {
  return (SERVING_STATES as readonly SubscriptionState[]).includes(state);
}

/** The guard of the event's SQL statement: `WHERE state IN (allowedFrom(event))`. */
export function allowedFrom(event: SubscriptionEvent): SubscriptionState[] {
  return SUBSCRIPTION_STATES.filter((s) => outcomesOf(event, s) !== undefined);
}

/** Events that may be applied to a subscription in `state` (what the dashboard offers). */
export function eventsFrom(state: SubscriptionState): SubscriptionEvent[] {
  return SUBSCRIPTION_EVENTS.filter((e) => outcomesOf(e, state) !== undefined);
}

export function outcomesOf(
  event: SubscriptionEvent,
  from: SubscriptionState,
): readonly Outcome[] | undefined {
  const cell: Partial<Record<SubscriptionState, readonly Outcome[]>> = TRANSITIONS[event];
  return cell[from];
}

/**
 * Side effects on the nodes. `push_users`: the user must be on its nodes with a fresh lease
 * (byte budget and expiry, which nodes enforce locally during an outage). `remove_users`: the
 * user must be gone from its nodes (the agent takes a final counter reading first).
 */
export type Effect = "push_users" | "remove_users";

export const DOMAIN_EVENTS = [
  "user.activated",
  "user.limited",
  "user.expired",
  "user.disabled",
  "user.enabled",
  "user.renewed",
  "user.reset",
  "user.quota_changed",
  "user.plan_changed",
  "user.deleted",
] as const;
export type DomainEventName = (typeof DOMAIN_EVENTS)[number];

const CAUSE: Record<SubscriptionEvent, DomainEventName> = {
  activate: "user.activated",
  hold_timeout: "user.activated",
  quota_exceeded: "user.limited",
  expired: "user.expired",
  disable: "user.disabled",
  enable: "user.enabled",
  renew: "user.renewed",
  reset_usage: "user.reset",
  raise_quota: "user.quota_changed",
  change_plan: "user.plan_changed",
  delete: "user.deleted",
};

export type TransitionResult =
  | {
      ok: true;
      from: SubscriptionState;
      to: TransitionTarget;
      /** Effects on nodes, to publish after commit. */
      effects: Effect[];
      /** The event's own name; always `domainEvents[0]`. */
      domainEvent: DomainEventName;
      /** The cause, then `user.limited` / `user.expired` when the transition newly cuts the user off. */
      domainEvents: DomainEventName[];
      /**
       * The plan's clock starts here: set started_at (first usage time, or the hold deadline) and
       * expires_at = expiresAt(started_at, duration). Compute both BEFORE building the context of
       * activate / hold_timeout, since time_expired depends on them; quota_exceeded from on_hold
       * (the first batch spent everything) sets them in the same statement.
       */
      startsClock: boolean;
    }
  | { ok: false; from: SubscriptionState; reason: "not_allowed" | "condition_not_met"; message: string };

export function conditionHolds(condition: Condition, ctx: TransitionContext): boolean {
  switch (condition) {
    case "not_started":
      return !ctx.started;
    case "time_expired":
      return ctx.timeExpired;
    case "quota_exhausted":
      return ctx.quotaExhausted;
  }
}

function effectsOf(from: SubscriptionState, to: TransitionTarget): Effect[] {
  const servedAfter = to !== "deleted" && isServing(to);
  if (isServing(from) && !servedAfter) return ["remove_users"];
  // Entering a served state, or staying served with a changed quota, expiry or usage: new lease.
  return servedAfter ? ["push_users"] : [];
}

export function transition(
  from: SubscriptionState,
  event: SubscriptionEvent,
  ctx: TransitionContext,
): TransitionResult {
  const outcomes = outcomesOf(event, from);
  if (!outcomes) {
    return {
      ok: false,
      from,
      reason: "not_allowed",
      message: `cannot ${event} a subscription that is ${from}`,
    };
  }
  const outcome = outcomes.find((o) => o.when === undefined || conditionHolds(o.when, ctx));
  if (!outcome) {
    const needed = outcomes.map((o) => o.when).join(" or ");
    return { ok: false, from, reason: "condition_not_met", message: `${event} requires ${needed}` };
  }
  const to = outcome.to;
  const domainEvent = CAUSE[event];
  const domainEvents: DomainEventName[] = [domainEvent];
  if ((to === "limited" || to === "expired") && to !== from && domainEvent !== `user.${to}`) {
    domainEvents.push(`user.${to}`);
  }
  const startsClock =
    from === "on_hold" && (event === "activate" || event === "hold_timeout" || event === "quota_exceeded");
  return { ok: true, from, to, effects: effectsOf(from, to), domainEvent, domainEvents, startsClock };
}

/** The columns the transition context is computed from. */
export interface SubscriptionFacts {
  usedBytes: bigint;
  quotaBytes: bigint | null;
  expiresAt: Date | null;
  startedAt: Date | null;
}

/** Builds the context from the facts as they will be after the event's field changes. */
export function contextOf(facts: SubscriptionFacts, now: Date): TransitionContext {
  return {
    started: facts.startedAt !== null,
    timeExpired: facts.expiresAt !== null && facts.expiresAt.getTime() <= now.getTime(),
    quotaExhausted: isExhausted(facts.quotaBytes, facts.usedBytes),
  };
}
