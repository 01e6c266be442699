import type { Subscriber, SubscriberStatus, Usage } from "./types";

const DAY_MS = 86_400_000;

export function usedBytes(usage: Usage): number {
  return usage.upload + usage.download;
}

/** Bytes left before the quota is hit; null = unlimited. Never negative (overshoot happens between polls). */
export function remainingBytes(usage: Usage): number | null {
  if (usage.total === null) return null;
  return Math.max(0, usage.total - usedBytes(usage));
}

/**
 * Whole days left, rounded up so "expires in 3 hours" reads as 1 day, not 0; 0 once expired;
 * null = never expires.
 */
export function daysLeft(usage: Usage, now: Date): number | null {
  if (usage.expireAt === null) return null;
  const ms = usage.expireAt.getTime() - now.getTime();
  return ms <= 0 ? 0 : Math.ceil(ms / DAY_MS);
}

export function isQuotaExhausted(usage: Usage): boolean {
  return usage.total !== null && usedBytes(usage) >= usage.total;
}

export function isExpired(usage: Usage, now: Date): boolean {
  return usage.expireAt !== null && usage.expireAt.getTime() <= now.getTime();
}

/**
 * The status the documents are rendered for. The state machine flips status on a schedule, so in
 * the gap after the quota runs out or the date passes the stored status still says "active"; the
 * subscription must not hand out working configs in that gap.
 */
export function effectiveStatus(subscriber: Subscriber, now: Date): SubscriberStatus {
  const { status, usage } = subscriber;
  if (status === "disabled" || status === "limited" || status === "expired") return status;
  if (isExpired(usage, now)) return "expired";
  if (isQuotaExhausted(usage)) return "limited";
  return status;
}

/** UTC calendar date, YYYY-MM-DD: the same everywhere the user sees it, whatever the server's zone. */
export function formatDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Binary units, at most two decimals, trailing zeros dropped: "1.5 GiB", "512 MiB", "0 B". */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const rounded = Math.round(value * 100) / 100;
  return `${rounded} ${UNITS[unit]}`;
}

/**
 * Why a subscriber gets a document that connects nowhere, or null when they get real configs.
 * The text is shown as the proxy name in clients, so it must be short and self-explanatory.
 */
export function blockReason(subscriber: Subscriber, now: Date): string | null {
  switch (effectiveStatus(subscriber, now)) {
    case "limited":
      return "Quota exhausted";
    case "expired": {
      const at = subscriber.usage.expireAt;
      return at ? `Expired on ${formatDate(at)}` : "Expired";
    }
    case "disabled":
      return "Disabled";
    default:
      return null;
  }
}
