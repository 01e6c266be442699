import { describe, expect, it } from "vitest";
import { DomainValidationError } from "./errors";
import {
  expiresAt,
  holdDeadline,
  nextResetAt,
  periodStart,
  RESET_ANCHORS,
  RESET_STRATEGIES,
  type ResetAnchor,
  type ResetStrategy,
} from "./periods";

const d = (iso: string) => new Date(iso);
const iso = (x: Date | null) => x?.toISOString() ?? null;
const DAY = 86_400_000;

// Oracles written differently from the implementation: they walk forward one step at a time.
function rollingOracle(strategy: ResetStrategy, start: Date, after: Date): Date {
  const s = start;
  for (let k = 1; ; k++) {
    let b: Date;
    if (strategy === "day" || strategy === "week") {
      b = new Date(s.getTime() + k * (strategy === "day" ? 1 : 7) * DAY);
    } else {
      const months = strategy === "month" ? k : 12 * k;
      const firstOfTarget = new Date(s);
      firstOfTarget.setUTCDate(1);
      firstOfTarget.setUTCMonth(firstOfTarget.getUTCMonth() + months);
      const lastDay = new Date(
        Date.UTC(firstOfTarget.getUTCFullYear(), firstOfTarget.getUTCMonth() + 1, 0),
      ).getUTCDate();
      firstOfTarget.setUTCDate(Math.min(s.getUTCDate(), lastDay));
      b = firstOfTarget;
    }
    if (b > after) return b;
  }
}

function calendarOracle(strategy: ResetStrategy, start: Date, after: Date): Date {
  const from = after > start ? after : start;
  const c = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  for (;;) {
    const isBoundary =
      strategy === "day" ||
      (strategy === "week" && c.getUTCDay() === 1) ||
      (strategy === "month" && c.getUTCDate() === 1) ||
      (strategy === "year" && c.getUTCDate() === 1 && c.getUTCMonth() === 0);
    if (isBoundary && c > from) return c;
    c.setUTCDate(c.getUTCDate() + 1);
  }
}

// Deterministic pseudo-random dates, so a failure is reproducible.
function* dates(seed: number, count: number, from: number, to: number): Generator<Date> {
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield new Date(from + Math.floor((x / 2 ** 31) * (to - from)));
  }
}

describe("rolling resets", () => {
  it("a subscription started on Jan 31 resets on the last day of shorter months and back on the 31st", () => {
    const start = d("2024-01-31T10:15:00Z");
    const seen: (string | null)[] = [];
    let t = start;
    for (let i = 0; i < 5; i++) {
      const next = nextResetAt("month", "rolling", start, t);
      seen.push(iso(next));
      if (next) t = next;
    }
    expect(seen).toEqual([
      "2024-02-29T10:15:00.000Z",
      "2024-03-31T10:15:00.000Z",
      "2024-04-30T10:15:00.000Z",
      "2024-05-31T10:15:00.000Z",
      "2024-06-30T10:15:00.000Z",
    ]);
  });

  it("clamps to Feb 28 outside leap years", () => {
    expect(iso(nextResetAt("month", "rolling", d("2023-01-31T00:00:00Z"), d("2023-02-01T00:00:00Z")))).toBe(
      "2023-02-28T00:00:00.000Z",
    );
  });

  it("a yearly plan started on Feb 29 resets on Feb 28 in common years and Feb 29 in leap years", () => {
    const start = d("2024-02-29T12:00:00Z");
    const next = (after: string) => iso(nextResetAt("year", "rolling", start, d(after)));
    expect(next("2024-03-01T00:00:00Z")).toBe("2025-02-28T12:00:00.000Z");
    expect(next("2025-02-28T12:00:00Z")).toBe("2026-02-28T12:00:00.000Z");
    expect(next("2027-03-01T00:00:00Z")).toBe("2028-02-29T12:00:00.000Z");
  });

  it("a boundary is strictly after `after`: at a boundary, the next one is returned", () => {
    const start = d("2026-01-10T08:00:00Z");
    expect(iso(nextResetAt("day", "rolling", start, d("2026-01-11T08:00:00Z")))).toBe(
      "2026-01-12T08:00:00.000Z",
    );
    expect(iso(nextResetAt("week", "rolling", start, d("2026-01-17T07:59:59.999Z")))).toBe(
      "2026-01-17T08:00:00.000Z",
    );
  });

  it("before the start, the first reset is one period after the start, never the start itself", () => {
    const start = d("2026-05-05T00:00:00Z");
    expect(iso(nextResetAt("month", "rolling", start, d("2020-01-01T00:00:00Z")))).toBe(
      "2026-06-05T00:00:00.000Z",
    );
    expect(iso(nextResetAt("day", "rolling", start, start))).toBe("2026-05-06T00:00:00.000Z");
  });

  it("after long downtime, resets once at the next boundary instead of once per missed period", () => {
    const start = d("2000-01-31T06:00:00Z");
    expect(iso(nextResetAt("month", "rolling", start, d("2026-06-15T00:00:00Z")))).toBe(
      "2026-06-30T06:00:00.000Z",
    );
  });

  it("periodStart returns the last boundary at or before the instant, restoring the 31st", () => {
    const start = d("2024-01-31T10:15:00Z");
    expect(iso(periodStart("month", "rolling", start, d("2024-03-15T00:00:00Z")))).toBe(
      "2024-02-29T10:15:00.000Z",
    );
    expect(iso(periodStart("month", "rolling", start, d("2024-03-31T10:15:00Z")))).toBe(
      "2024-03-31T10:15:00.000Z",
    );
    expect(iso(periodStart("month", "rolling", start, d("2024-03-31T10:14:59Z")))).toBe(
      "2024-02-29T10:15:00.000Z",
    );
    expect(iso(periodStart("month", "rolling", start, d("2024-02-01T00:00:00Z")))).toBe(start.toISOString());
  });

  it("handles years below 100 without JavaScript's 19xx mapping", () => {
    const start = new Date(0);
    start.setUTCFullYear(50, 0, 31);
    const next = nextResetAt("month", "rolling", start, start);
    expect(next?.getUTCFullYear()).toBe(50);
    expect(next?.getUTCMonth()).toBe(1);
    expect(next?.getUTCDate()).toBe(28);
  });
});

describe("calendar resets", () => {
  const start = d("2025-12-17T13:45:00Z");

  it.each([
    ["day", "2026-01-01T23:59:59Z", "2026-01-02T00:00:00.000Z"],
    ["day", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00.000Z"],
    // 2026-01-01 is a Thursday; ISO weeks start on Monday.
    ["week", "2026-01-01T12:00:00Z", "2026-01-05T00:00:00.000Z"],
    ["week", "2026-01-04T23:59:59Z", "2026-01-05T00:00:00.000Z"],
    ["week", "2026-01-05T00:00:00Z", "2026-01-12T00:00:00.000Z"],
    ["month", "2026-01-31T23:00:00Z", "2026-02-01T00:00:00.000Z"],
    ["month", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00.000Z"],
    ["year", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00.000Z"],
    ["year", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00.000Z"],
  ] as const)("%s after %s → %s", (strategy, after, want) => {
    expect(iso(nextResetAt(strategy, "calendar", start, d(after)))).toBe(want);
  });

  it("leap day: the daily boundary after Feb 28 2028 is Feb 29, the monthly one Mar 1", () => {
    expect(iso(nextResetAt("day", "calendar", start, d("2028-02-28T05:00:00Z")))).toBe(
      "2028-02-29T00:00:00.000Z",
    );
    expect(iso(nextResetAt("month", "calendar", start, d("2028-02-29T05:00:00Z")))).toBe(
      "2028-03-01T00:00:00.000Z",
    );
  });

  it("the first period is the partial one from the start to the first boundary", () => {
    expect(iso(nextResetAt("month", "calendar", start, d("2025-01-01T00:00:00Z")))).toBe(
      "2026-01-01T00:00:00.000Z",
    );
    expect(iso(periodStart("month", "calendar", start, d("2025-12-31T00:00:00Z")))).toBe(start.toISOString());
    expect(iso(periodStart("month", "calendar", start, d("2026-02-14T00:00:00Z")))).toBe(
      "2026-02-01T00:00:00.000Z",
    );
  });

  it("a start exactly on a boundary does not count as a reset", () => {
    const midnight = d("2026-03-01T00:00:00Z");
    expect(iso(nextResetAt("month", "calendar", midnight, midnight))).toBe("2026-04-01T00:00:00.000Z");
  });

  it("periodStart on a week is the Monday at or before", () => {
    expect(iso(periodStart("week", "calendar", start, d("2026-01-04T23:00:00Z")))).toBe(
      "2025-12-29T00:00:00.000Z",
    );
  });
});

describe("every strategy and anchor against the step-by-step oracle", () => {
  const combos = RESET_STRATEGIES.filter((s) => s !== "none").flatMap((strategy) =>
    RESET_ANCHORS.map((anchor) => [strategy, anchor] as [ResetStrategy, ResetAnchor]),
  );
  const lo = Date.UTC(2023, 0, 1);
  const hi = Date.UTC(2029, 0, 1);

  it.each(combos)("%s / %s", (strategy, anchor) => {
    const starts = [...dates(7, 20, lo, hi), d("2024-01-31T23:59:59.999Z"), d("2024-02-29T00:00:00Z")];
    for (const start of starts) {
      for (const after of dates(
        start.getTime() % 9973,
        25,
        start.getTime() - 40 * DAY,
        start.getTime() + 800 * DAY,
      )) {
        const next = nextResetAt(strategy, anchor, start, after);
        const want =
          anchor === "rolling"
            ? rollingOracle(strategy, start, after)
            : calendarOracle(strategy, start, after);
        expect(iso(next), `${start.toISOString()} after ${after.toISOString()}`).toBe(want.toISOString());
        // The period containing `after` ends at `next`, and a boundary is the start of its own period.
        if (after >= start) {
          const ps = periodStart(strategy, anchor, start, after);
          expect(ps.getTime()).toBeLessThanOrEqual(after.getTime());
          expect(iso(nextResetAt(strategy, anchor, start, ps))).toBe(want.toISOString());
        }
        expect(iso(periodStart(strategy, anchor, start, want))).toBe(want.toISOString());
      }
    }
  });
});

describe("strategy none", () => {
  it("never resets and its one period starts at the start", () => {
    const start = d("2026-01-01T00:00:00Z");
    expect(nextResetAt("none", "rolling", start, d("2030-01-01T00:00:00Z"))).toBeNull();
    expect(iso(periodStart("none", "calendar", start, d("2030-01-01T00:00:00Z")))).toBe(start.toISOString());
  });

  it("rejects an invalid date", () => {
    expect(() => nextResetAt("day", "rolling", new Date(Number.NaN), new Date())).toThrow(RangeError);
  });
});

describe("expiresAt", () => {
  it("adds whole 86,400-second days in UTC, leap day included", () => {
    expect(iso(expiresAt(d("2024-02-01T09:30:00Z"), { days: 30 }))).toBe("2024-03-02T09:30:00.000Z");
    expect(iso(expiresAt(d("2023-02-01T09:30:00Z"), { days: 30 }))).toBe("2023-03-03T09:30:00.000Z");
  });

  it("adds seconds", () => {
    expect(iso(expiresAt(d("2026-01-01T00:00:00Z"), { seconds: 3600 }))).toBe("2026-01-01T01:00:00.000Z");
  });

  it("a plan without a duration never expires", () => {
    expect(expiresAt(d("2026-01-01T00:00:00Z"), null)).toBeNull();
  });

  it.each([
    [{ days: 0 }, "duration.days"],
    [{ days: -3 }, "duration.days"],
    [{ days: 1.5 }, "duration.days"],
    [{ seconds: 0 }, "duration.seconds"],
    [{ days: 1e9 }, "duration"],
  ])("rejects %j naming %s", (duration, field) => {
    try {
      expiresAt(d("2026-01-01T00:00:00Z"), duration);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DomainValidationError);
      expect((e as DomainValidationError).field).toBe(field);
    }
  });
});

describe("holdDeadline", () => {
  const since = d("2026-01-01T00:00:00Z");

  it("a maximum hold time gives a hold_timeout deadline", () => {
    expect(holdDeadline(since, { maxHoldSeconds: 7 * 86_400 })).toEqual({
      at: d("2026-01-08T00:00:00Z"),
      event: "hold_timeout",
    });
  });

  it("a fixed start date gives an activate deadline", () => {
    expect(holdDeadline(since, { startAt: d("2026-02-01T00:00:00Z") })).toEqual({
      at: d("2026-02-01T00:00:00Z"),
      event: "activate",
    });
  });

  it("with both, the earlier wins, and a tie goes to the fixed date", () => {
    expect(holdDeadline(since, { startAt: d("2026-02-01T00:00:00Z"), maxHoldSeconds: 86_400 })?.event).toBe(
      "hold_timeout",
    );
    expect(holdDeadline(since, { startAt: d("2026-01-02T00:00:00Z"), maxHoldSeconds: 86_400 })?.event).toBe(
      "activate",
    );
  });

  it("with neither, the subscription waits for its first connection without a deadline", () => {
    expect(holdDeadline(since, {})).toBeNull();
    expect(holdDeadline(since, { startAt: null, maxHoldSeconds: null })).toBeNull();
  });

  it("rejects a non-positive maximum hold, naming the field", () => {
    expect(() => holdDeadline(since, { maxHoldSeconds: 0 })).toThrow(/on_hold\.max_hold_seconds/);
    expect(() => holdDeadline(since, { maxHoldSeconds: 1e15 })).toThrow(/too large/);
  });
});
