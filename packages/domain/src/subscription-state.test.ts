import { describe, expect, it } from "vitest";
import {
  allowedFrom,
  contextOf,
  eventsFrom,
  isServing,
  SUBSCRIPTION_EVENTS,
  SUBSCRIPTION_STATES,
  type SubscriptionEvent,
  type SubscriptionState,
  TRANSITIONS,
  type TransitionContext,
  type TransitionTarget,
  transition,
} from "./subscription-state";

// An independent oracle, written from the rules in words rather than from the table, so a typo in
// the table shows up as a disagreement instead of being copied into the expectation.
type Expected = TransitionTarget | "not_allowed" | "condition_not_met";

function settle(c: TransitionContext): SubscriptionState {
  if (!c.started) return "on_hold";
  if (c.timeExpired) return "expired";
  if (c.quotaExhausted) return "limited";
  return "active";
}

function oracle(state: SubscriptionState, event: SubscriptionEvent, c: TransitionContext): Expected {
  switch (event) {
    case "delete":
      return "deleted";
    case "disable":
      return state === "disabled" ? "not_allowed" : "disabled";
    case "enable":
      return state === "disabled" ? settle(c) : "not_allowed";
    case "activate":
    case "hold_timeout":
      if (state !== "on_hold") return "not_allowed";
      return c.timeExpired ? "expired" : c.quotaExhausted ? "limited" : "active";
    case "quota_exceeded":
      if (state !== "on_hold" && state !== "active") return "not_allowed";
      return c.quotaExhausted ? "limited" : "condition_not_met";
    case "expired":
      if (state === "expired" || state === "disabled") return "not_allowed";
      return c.timeExpired ? "expired" : "condition_not_met";
    default:
      // renew, reset_usage, raise_quota, change_plan: edits that settle, except on disabled.
      return state === "disabled" ? "disabled" : settle(c);
  }
}

const CONTEXTS: TransitionContext[] = [];
for (const started of [false, true])
  for (const timeExpired of [false, true])
    for (const quotaExhausted of [false, true]) CONTEXTS.push({ started, timeExpired, quotaExhausted });

const ctxName = (c: TransitionContext) =>
  `${c.started ? "started" : "not started"}, ${c.timeExpired ? "time up" : "time left"}, ${c.quotaExhausted ? "quota spent" : "bytes left"}`;

const cases = SUBSCRIPTION_STATES.flatMap((state) =>
  SUBSCRIPTION_EVENTS.flatMap((event) =>
    CONTEXTS.map((c) => ({ state, event, c, want: oracle(state, event, c) })),
  ),
);

const fresh: TransitionContext = { started: true, timeExpired: false, quotaExhausted: false };

describe("every state × every event × every context", () => {
  it("covers 5 states × 11 events × 8 contexts", () => {
    expect(cases).toHaveLength(5 * 11 * 8);
  });

  it.each(cases.map((x) => [x.state, x.event, ctxName(x.c), x.want, x] as const))(
    "%s + %s (%s) → %s",
    (_s, _e, _c, want, { state, event, c }) => {
      const r = transition(state, event, c);
      if (want === "not_allowed" || want === "condition_not_met") {
        expect(r).toMatchObject({ ok: false, reason: want, from: state });
      } else {
        expect(r).toMatchObject({ ok: true, to: want, from: state });
      }
    },
  );
});

describe("guards derived from the table", () => {
  it.each(SUBSCRIPTION_EVENTS)(
    "allowedFrom(%s) is exactly the states where the event is not refused",
    (event) => {
      const expected = SUBSCRIPTION_STATES.filter((s) =>
        CONTEXTS.some((c) => oracle(s, event, c) !== "not_allowed"),
      );
      expect(allowedFrom(event)).toEqual(expected);
    },
  );

  it("pins the SQL guards (a change here changes every transition statement)", () => {
    expect(Object.fromEntries(SUBSCRIPTION_EVENTS.map((e) => [e, allowedFrom(e)]))).toEqual({
      activate: ["on_hold"],
      hold_timeout: ["on_hold"],
      quota_exceeded: ["on_hold", "active"],
      expired: ["on_hold", "active", "limited"],
      disable: ["on_hold", "active", "limited", "expired"],
      enable: ["disabled"],
      renew: ["on_hold", "active", "limited", "expired", "disabled"],
      reset_usage: ["on_hold", "active", "limited", "expired", "disabled"],
      raise_quota: ["on_hold", "active", "limited", "expired", "disabled"],
      change_plan: ["on_hold", "active", "limited", "expired", "disabled"],
      delete: ["on_hold", "active", "limited", "expired", "disabled"],
    });
  });

  it.each(SUBSCRIPTION_STATES)("eventsFrom(%s) agrees with allowedFrom", (state) => {
    expect(eventsFrom(state)).toEqual(SUBSCRIPTION_EVENTS.filter((e) => allowedFrom(e).includes(state)));
  });

  it("only quota_exceeded and expired can be refused for their condition; every other cell is total", () => {
    for (const [event, cells] of Object.entries(TRANSITIONS)) {
      for (const outcomes of Object.values(cells)) {
        const total = outcomes.some((o) => !("when" in o) || o.when === undefined);
        expect(total, event).toBe(event !== "quota_exceeded" && event !== "expired");
      }
    }
  });

  it("serves on_hold and active only: a held subscriber must be able to make the first connection", () => {
    expect(SUBSCRIPTION_STATES.filter(isServing)).toEqual(["on_hold", "active"]);
  });
});

describe("effects and domain events for every allowed transition", () => {
  const allowed = cases.flatMap(({ state, event, c }) => {
    const r = transition(state, event, c);
    return r.ok ? [r] : [];
  });

  it("removes users exactly when a served subscription stops being served", () => {
    for (const r of allowed) {
      const servedAfter = r.to !== "deleted" && isServing(r.to);
      expect(r.effects.includes("remove_users"), `${r.from}→${r.to}`).toBe(isServing(r.from) && !servedAfter);
      expect(r.effects.includes("push_users"), `${r.from}→${r.to}`).toBe(servedAfter);
    }
  });

  it("emits user.limited / user.expired exactly when that state is newly entered", () => {
    for (const r of allowed) {
      for (const s of ["limited", "expired"] as const) {
        expect(r.domainEvents.includes(`user.${s}`), `${r.from}→${r.to}`).toBe(r.to === s && r.from !== s);
      }
      expect(r.domainEvents[0]).toBe(r.domainEvent);
      expect(new Set(r.domainEvents).size).toBe(r.domainEvents.length);
    }
  });

  it("starts the clock only on activate, hold_timeout and a held subscription's first overrun", () => {
    for (const { state, event, c } of cases) {
      const r = transition(state, event, c);
      if (!r.ok) continue;
      const starting = ["activate", "hold_timeout", "quota_exceeded"].includes(event) && state === "on_hold";
      expect(r.startsClock, `${state} + ${event}`).toBe(starting);
    }
  });
});

describe("the nuances the service layer relies on", () => {
  it("enable on a subscription whose quota is still spent lands in limited, not active", () => {
    const r = transition("disabled", "enable", { ...fresh, quotaExhausted: true });
    expect(r).toMatchObject({
      ok: true,
      to: "limited",
      effects: [],
      domainEvents: ["user.enabled", "user.limited"],
    });
  });

  it("enable on a subscription whose time ran out while disabled lands in expired", () => {
    expect(transition("disabled", "enable", { ...fresh, timeExpired: true })).toMatchObject({
      to: "expired",
    });
  });

  it("enable on a subscription disabled before its first connection puts it back on hold, served", () => {
    const r = transition("disabled", "enable", { ...fresh, started: false });
    expect(r).toMatchObject({
      ok: true,
      to: "on_hold",
      effects: ["push_users"],
      domainEvents: ["user.enabled"],
    });
  });

  it("renew on a limited subscription whose quota is still spent stays limited", () => {
    expect(transition("limited", "renew", { ...fresh, quotaExhausted: true })).toMatchObject({
      ok: true,
      to: "limited",
      effects: [],
      domainEvents: ["user.renewed"],
    });
  });

  it("renew together with a usage reset brings a limited subscription back to active", () => {
    expect(transition("limited", "renew", fresh)).toMatchObject({ to: "active", effects: ["push_users"] });
  });

  it("renew to an expiry already in the past expires an active subscription", () => {
    const r = transition("active", "renew", { ...fresh, timeExpired: true });
    expect(r).toMatchObject({
      to: "expired",
      effects: ["remove_users"],
      domainEvents: ["user.renewed", "user.expired"],
    });
  });

  it("raise_quota on an expired subscription stays expired", () => {
    const r = transition("expired", "raise_quota", { ...fresh, timeExpired: true });
    expect(r).toMatchObject({ ok: true, to: "expired", effects: [], domainEvents: ["user.quota_changed"] });
  });

  it("raise_quota on a limited subscription with bytes left again re-adds the user", () => {
    expect(transition("limited", "raise_quota", fresh)).toMatchObject({
      to: "active",
      effects: ["push_users"],
    });
  });

  it("lowering the quota below usage limits an active subscription at once", () => {
    const r = transition("active", "raise_quota", { ...fresh, quotaExhausted: true });
    expect(r).toMatchObject({ to: "limited", effects: ["remove_users"] });
    expect(r.ok && r.domainEvents).toEqual(["user.quota_changed", "user.limited"]);
  });

  it("the periodic usage reset never revives an expired subscription", () => {
    expect(transition("expired", "reset_usage", { ...fresh, timeExpired: true })).toMatchObject({
      to: "expired",
    });
  });

  it("an expired subscription whose expiry was cleared or moved by an edit follows the facts", () => {
    expect(transition("expired", "change_plan", fresh)).toMatchObject({
      to: "active",
      effects: ["push_users"],
    });
  });

  it("a limited subscription still expires, so a later reset cannot bring it back", () => {
    expect(
      transition("limited", "expired", { ...fresh, quotaExhausted: true, timeExpired: true }),
    ).toMatchObject({
      to: "expired",
      effects: [],
      domainEvents: ["user.expired"],
    });
  });

  it("edits on a disabled subscription keep it disabled and touch no node", () => {
    for (const e of ["renew", "reset_usage", "raise_quota", "change_plan"] as const) {
      expect(transition("disabled", e, fresh)).toMatchObject({ ok: true, to: "disabled", effects: [] });
    }
  });

  it("disable works from every other state and is refused on a disabled one", () => {
    for (const s of ["on_hold", "active", "limited", "expired"] as const) {
      expect(transition(s, "disable", fresh)).toMatchObject({
        to: "disabled",
        domainEvents: ["user.disabled"],
      });
    }
    expect(transition("disabled", "disable", fresh)).toMatchObject({ ok: false, reason: "not_allowed" });
  });

  it("hold_timeout starts the plan: active, clock started, lease pushed", () => {
    expect(transition("on_hold", "hold_timeout", { ...fresh, started: false })).toMatchObject({
      to: "active",
      startsClock: true,
      effects: ["push_users"],
      domainEvents: ["user.activated"],
    });
  });

  it("a first batch that spends the whole quota activates straight into limited", () => {
    expect(transition("on_hold", "activate", { ...fresh, quotaExhausted: true })).toMatchObject({
      to: "limited",
      startsClock: true,
      effects: ["remove_users"],
      domainEvents: ["user.activated", "user.limited"],
    });
  });

  it("quota_exceeded and expired are refused when their fact does not hold", () => {
    expect(transition("active", "quota_exceeded", fresh)).toMatchObject({
      ok: false,
      reason: "condition_not_met",
    });
    expect(transition("active", "expired", fresh)).toMatchObject({ ok: false, reason: "condition_not_met" });
  });

  it("delete removes users only from a served subscription", () => {
    expect(transition("active", "delete", fresh)).toMatchObject({ to: "deleted", effects: ["remove_users"] });
    expect(transition("limited", "delete", fresh)).toMatchObject({ to: "deleted", effects: [] });
  });

  it("a refusal explains itself", () => {
    const r = transition("expired", "activate", fresh);
    expect(r).toEqual({
      ok: false,
      from: "expired",
      reason: "not_allowed",
      message: "cannot activate a subscription that is expired",
    });
  });
});

describe("contextOf", () => {
  const now = new Date("2026-03-01T00:00:00Z");
  const base = { usedBytes: 0n, quotaBytes: 100n, expiresAt: null, startedAt: now };

  it("counts expires_at equal to now as expired", () => {
    expect(contextOf({ ...base, expiresAt: now }, now).timeExpired).toBe(true);
    expect(contextOf({ ...base, expiresAt: new Date(now.getTime() + 1) }, now).timeExpired).toBe(false);
  });

  it("counts usage equal to the quota as spent and an unlimited quota as never spent", () => {
    expect(contextOf({ ...base, usedBytes: 100n }, now).quotaExhausted).toBe(true);
    expect(contextOf({ ...base, usedBytes: 99n }, now).quotaExhausted).toBe(false);
    expect(contextOf({ ...base, quotaBytes: null, usedBytes: 10n ** 18n }, now).quotaExhausted).toBe(false);
  });

  it("treats a subscription without started_at as not started and without expiry as never expiring", () => {
    expect(contextOf({ ...base, startedAt: null }, now)).toEqual({
      started: false,
      timeExpired: false,
      quotaExhausted: false,
    });
  });
});
