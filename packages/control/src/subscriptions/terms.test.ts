import { describe, expect, it } from "vitest";
import { initialSchedule, initialState, startedSchedule, type Terms } from "./terms";

const DAY = 86_400;
const now = new Date("2026-01-31T10:00:00Z");
const terms: Terms = {
  planId: null,
  quotaBytes: 1000n,
  durationSeconds: 30 * DAY,
  baseEngines: ["xray", "wireguard"],
  resetStrategy: "none",
  resetAnchor: "start",
  holdMode: "none",
  holdStartAt: null,
  maxHoldSeconds: null,
  nextPlanId: null,
};

describe("subscription terms", () => {
  it("a plan without hold starts now and ends after its duration", () => {
    const s = initialSchedule(terms, now);
    expect(s.startedAt).toEqual(now);
    expect(s.expiresAt).toEqual(new Date("2026-03-02T10:00:00Z"));
    expect(s.holdDeadline).toBeNull();
    expect(s.nextResetAt).toBeNull();
    expect(initialState(1000n, s, now)).toBe("active");
  });

  it("an explicit end date wins over the duration", () => {
    const end = new Date("2026-02-01T00:00:00Z");
    expect(initialSchedule(terms, now, end).expiresAt).toEqual(end);
  });

  it("rolling monthly resets count from the start, calendar ones from the 1st", () => {
    expect(startedSchedule({ ...terms, resetStrategy: "month" }, now).nextResetAt).toEqual(
      new Date("2026-02-28T10:00:00Z"),
    );
    expect(
      startedSchedule({ ...terms, resetStrategy: "month", resetAnchor: "calendar" }, now).nextResetAt,
    ).toEqual(new Date("2026-02-01T00:00:00Z"));
  });

  it("a held plan has no clock yet; its deadline is the earlier of the date and the maximum hold", () => {
    const held = initialSchedule(
      { ...terms, holdMode: "date", holdStartAt: new Date("2026-02-10T00:00:00Z"), maxHoldSeconds: 3 * DAY },
      now,
    );
    expect(held).toEqual({
      startedAt: null,
      expiresAt: null,
      holdDeadline: new Date("2026-02-03T10:00:00Z"),
      nextResetAt: null,
    });
    expect(initialState(1000n, held, now)).toBe("on_hold");
    const forever = initialSchedule({ ...terms, holdMode: "first_connection" }, now);
    expect(forever.holdDeadline).toBeNull();
  });

  it("a new subscription settles like an applied plan: past end → expired, zero quota → limited", () => {
    expect(initialState(1000n, initialSchedule(terms, now, new Date("2026-01-01T00:00:00Z")), now)).toBe(
      "expired",
    );
    expect(initialState(0n, initialSchedule(terms, now), now)).toBe("limited");
    expect(initialState(null, initialSchedule(terms, now), now)).toBe("active");
  });
});
