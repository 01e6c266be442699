import { invalid } from "./errors";

// All calendar math is in UTC. The control plane serves subscribers in many time zones and a reset
// at "local midnight" would need a zone per tenant plus DST rules; UTC boundaries are the same for
// every replica and every SQL query (`date_trunc('month', t AT TIME ZONE 'UTC')`).

export const RESET_STRATEGIES = ["none", "day", "week", "month", "year"] as const;
export type ResetStrategy = (typeof RESET_STRATEGIES)[number];

/**
 * `rolling`: every N from the subscription start (started Jan 31 14:05 → Feb 28/29 14:05 →
 * Mar 31 14:05; the day is clamped to the month's length, then restored, because each boundary is
 * computed from the start and never from the previous boundary).
 * `calendar`: UTC midnight, ISO-week Monday, the 1st of the month, January 1st. The first period
 * runs from the start to the first boundary after it, so it is usually a partial one.
 */
export const RESET_ANCHORS = ["rolling", "calendar"] as const;
export type ResetAnchor = (typeof RESET_ANCHORS)[number];

const DAY_MS = 86_400_000;

function assertDate(d: Date, name: string): number {
  const t = d.getTime();
  if (Number.isNaN(t)) throw new RangeError(`${name} is not a valid date`);
  return t;
}

/** `Date.UTC` maps years 0–99 to 1900–1999; `setUTCFullYear` does not. Month and day may overflow. */
function utc(year: number, month: number, day: number, msOfDay = 0): number {
  return new Date(0).setUTCFullYear(year, month, day) + msOfDay;
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month + 1, 0)).getUTCDate();
}

/** The start shifted by `months` whole months, day clamped to the target month, time of day kept. */
function addMonthsClamped(start: number, months: number): number {
  const s = new Date(start);
  const total = s.getUTCFullYear() * 12 + s.getUTCMonth() + months;
  const year = Math.floor(total / 12);
  const month = total - year * 12;
  const day = Math.min(s.getUTCDate(), daysInMonth(year, month));
  return utc(year, month, day, start - utc(s.getUTCFullYear(), s.getUTCMonth(), s.getUTCDate()));
}

/** The k-th rolling boundary (k = 0 is the start itself). Monotonic in k for every strategy. */
function rollingBoundary(strategy: Exclude<ResetStrategy, "none">, start: number, k: number): number {
  switch (strategy) {
    case "day":
      return start + k * DAY_MS;
    case "week":
      return start + k * 7 * DAY_MS;
    case "month":
      return addMonthsClamped(start, k);
    case "year":
      return addMonthsClamped(start, 12 * k);
  }
}

/** The largest k ≥ 0 whose rolling boundary is ≤ t (t ≥ start). Estimated, then nudged: O(1). */
function rollingIndex(strategy: Exclude<ResetStrategy, "none">, start: number, t: number): number {
  let k: number;
  if (strategy === "day" || strategy === "week") {
    k = Math.floor((t - start) / (strategy === "day" ? DAY_MS : 7 * DAY_MS));
  } else {
    const a = new Date(start);
    const b = new Date(t);
    const months = (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + b.getUTCMonth() - a.getUTCMonth();
    k = strategy === "month" ? months : Math.floor(months / 12);
  }
  while (k > 0 && rollingBoundary(strategy, start, k) > t) k--;
  while (rollingBoundary(strategy, start, k + 1) <= t) k++;
  return k;
}

/** The calendar boundary at or before t. */
function calendarFloor(strategy: Exclude<ResetStrategy, "none">, t: number): number {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  switch (strategy) {
    case "day":
      return utc(y, m, d.getUTCDate());
    case "week":
      // getUTCDay: Sunday = 0. ISO weeks start on Monday.
      return utc(y, m, d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
    case "month":
      return utc(y, m, 1);
    case "year":
      return utc(y, 0, 1);
  }
}

function calendarNext(strategy: Exclude<ResetStrategy, "none">, floor: number): number {
  const d = new Date(floor);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  if (strategy === "day") return utc(y, m, day + 1);
  if (strategy === "week") return utc(y, m, day + 7);
  if (strategy === "month") return utc(y, m + 1, 1);
  return utc(y + 1, 0, 1);
}

/**
 * The first data-limit reset strictly after `after`, or `null` for strategy "none". `startAt` is
 * when the subscription started (activation, not creation: an on-hold period is not a usage
 * period). The scheduler passes `after = now`, so after downtime it resets once, not once per
 * missed period. A boundary equal to `startAt` is not a reset: usage is zero there anyway.
 */
export function nextResetAt(
  strategy: ResetStrategy,
  anchor: ResetAnchor,
  startAt: Date,
  after: Date,
): Date | null {
  const start = assertDate(startAt, "startAt");
  const t = Math.max(assertDate(after, "after"), start);
  if (strategy === "none") return null;
  if (anchor === "rolling")
    return new Date(rollingBoundary(strategy, start, rollingIndex(strategy, start, t) + 1));
  return new Date(calendarNext(strategy, calendarFloor(strategy, t)));
}

/**
 * The start of the usage period that contains `at`: the last reset boundary at or before it, or
 * `startAt` when there is none yet (strategy "none", the first partial calendar period, or `at`
 * before the start).
 */
export function periodStart(strategy: ResetStrategy, anchor: ResetAnchor, startAt: Date, at: Date): Date {
  const start = assertDate(startAt, "startAt");
  const t = assertDate(at, "at");
  if (strategy === "none" || t <= start) return new Date(start);
  if (anchor === "rolling")
    return new Date(rollingBoundary(strategy, start, rollingIndex(strategy, start, t)));
  return new Date(Math.max(start, calendarFloor(strategy, t)));
}

/** A plan's length. Days are exactly 86,400 s: UTC has no DST and leap seconds are not counted. */
export type PlanDuration = { days: number } | { seconds: number };

function positiveInteger(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 1) invalid(field, "must be a whole number of at least 1");
}

/** When a plan that starts at `start` ends; `null` duration means it never expires. */
export function expiresAt(start: Date, duration: PlanDuration | null, field = "duration"): Date | null {
  const t = assertDate(start, "start");
  if (duration === null) return null;
  let ms: number;
  if ("days" in duration) {
    positiveInteger(duration.days, `${field}.days`);
    ms = duration.days * DAY_MS;
  } else {
    positiveInteger(duration.seconds, `${field}.seconds`);
    ms = duration.seconds * 1000;
  }
  const end = new Date(t + ms);
  if (Number.isNaN(end.getTime())) invalid(field, "ends beyond the last representable date");
  return end;
}

/**
 * On hold, a subscription is served but its clock has not started: it starts at the first
 * connection (ingest sends `activate`) or at the deadline below, whichever comes first — Marzban's
 * model. `startAt` is a fixed start date; `maxHoldSeconds` bounds the wait from when the hold
 * began. With both, the earlier wins; with neither, it waits for the first connection forever.
 */
export interface OnHoldRule {
  startAt?: Date | null;
  maxHoldSeconds?: number | null;
}

/** When the scheduler must start a held subscription, and which event to send then. */
export interface HoldDeadline {
  at: Date;
  event: "activate" | "hold_timeout";
}

/**
 * The scheduler's deadline for a held subscription. The service should start the plan's clock at
 * `at` itself, not at the moment the job ran, so a late or repeated job gives the same expiry.
 * A tie goes to the fixed date (`activate`): that was the operator's explicit intent.
 */
export function holdDeadline(heldSince: Date, rule: OnHoldRule, field = "on_hold"): HoldDeadline | null {
  const since = assertDate(heldSince, "heldSince");
  const fixed = rule.startAt ? assertDate(rule.startAt, `${field}.start_at`) : null;
  let timeout: number | null = null;
  if (rule.maxHoldSeconds !== null && rule.maxHoldSeconds !== undefined) {
    positiveInteger(rule.maxHoldSeconds, `${field}.max_hold_seconds`);
    timeout = since + rule.maxHoldSeconds * 1000;
    if (Number.isNaN(new Date(timeout).getTime())) invalid(`${field}.max_hold_seconds`, "is too large");
  }
  if (fixed !== null && (timeout === null || fixed <= timeout))
    return { at: new Date(fixed), event: "activate" };
  if (timeout !== null) return { at: new Date(timeout), event: "hold_timeout" };
  return null;
}
