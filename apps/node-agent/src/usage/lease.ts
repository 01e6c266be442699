// Offline lease: while the control plane is unreachable the agent keeps serving its users (no
// fail-closed shutdown) but enforces the budget and expiry it was last given, so nobody rides an
// outage past their quota by more than one sampling interval. Pure: the clock is injected and the
// caller performs the removals.
//
// A lease says "as of usage batch `asOfSeq`, this user had `remainingBytes` left": the control plane
// computed it from everything it had committed up to that seq. Usage in batches with a higher seq is
// not reflected yet and is subtracted here; a newer lease replaces the older and forgets the usage it
// already includes.

import type { UsageDelta } from "./delta-tracker";

export interface Lease {
  /** null = no byte quota. */
  remainingBytes: number | null;
  /** Epoch ms; null = never expires. */
  expiresAt: number | null;
  /** Highest batch seq already included in remainingBytes (0 if none). */
  asOfSeq: number;
}

export interface LeaseBook {
  leases: Map<string, Lease>;
  /**
   * Bytes (up + down) per user per batch seq, kept only for seqs above the user's lease: flat
   * [seq, bytes, seq, bytes, …] in ascending seq order. Seqs only grow, so appends go to the end and
   * a new lease drops a prefix; one small array per user instead of a Map (a 100k-user node keeps
   * one entry per user with traffic).
   */
  usage: Map<string, number[]>;
}

export type RemovalReason = "quota" | "expired";

export interface LeaseDecision {
  userId: string;
  reason: RemovalReason;
  usedSinceLease: number;
}

export function createLeaseBook(): LeaseBook {
  return { leases: new Map(), usage: new Map() };
}

/** Installs a lease from the control plane; older usage it already accounts for is forgotten. */
export function grantLease(book: LeaseBook, userId: string, lease: Lease): void {
  const current = book.leases.get(userId);
  // Leases can arrive out of order after a reconnect; never let an older one win.
  if (current && current.asOfSeq > lease.asOfSeq) return;
  book.leases.set(userId, lease);
  const perSeq = book.usage.get(userId);
  if (!perSeq) return;
  let covered = 0;
  while (covered < perSeq.length && (perSeq[covered] as number) <= lease.asOfSeq) covered += 2;
  if (covered === perSeq.length) book.usage.delete(userId);
  else if (covered > 0) perSeq.splice(0, covered);
}

export function revokeLease(book: LeaseBook, userId: string): void {
  book.leases.delete(userId);
  book.usage.delete(userId);
}

/**
 * Records the deltas just appended under the seq the queue returned. For a merged batch pass only the
 * new deltas: the batches it replaced were already recorded under their own (lower) seqs.
 */
export function recordBatchUsage(book: LeaseBook, seq: number, deltas: readonly UsageDelta[]): void {
  for (const d of deltas) {
    const lease = book.leases.get(d.userId);
    // Users without a lease are not enforced locally; their usage is not needed here.
    if (!lease || seq <= lease.asOfSeq) continue;
    const bytes = d.up + d.down;
    const perSeq = book.usage.get(d.userId);
    if (!perSeq) book.usage.set(d.userId, [seq, bytes]);
    else addAt(perSeq, seq, bytes);
  }
}

/** Adds bytes under `seq`, keeping the pairs in seq order (a merged batch may reuse a lower seq). */
function addAt(perSeq: number[], seq: number, bytes: number): void {
  let i = perSeq.length - 2;
  while (i >= 0 && (perSeq[i] as number) > seq) i -= 2;
  if (i >= 0 && perSeq[i] === seq) perSeq[i + 1] = (perSeq[i + 1] as number) + bytes;
  else perSeq.splice(i + 2, 0, seq, bytes);
}

export function usedSinceLease(book: LeaseBook, userId: string): number {
  const perSeq = book.usage.get(userId);
  let sum = 0;
  if (perSeq) for (let i = 1; i < perSeq.length; i += 2) sum += perSeq[i] as number;
  return sum;
}

/** Users to remove locally now. Expiry wins over quota when both apply. */
export function decideRemovals(book: LeaseBook, now: number): LeaseDecision[] {
  const out: LeaseDecision[] = [];
  for (const [userId, lease] of book.leases) {
    const used = usedSinceLease(book, userId);
    if (lease.expiresAt !== null && now >= lease.expiresAt) {
      out.push({ userId, reason: "expired", usedSinceLease: used });
    } else if (lease.remainingBytes !== null && used >= lease.remainingBytes) {
      out.push({ userId, reason: "quota", usedSinceLease: used });
    }
  }
  return out;
}

/** Earliest future expiry, so the agent can wake up exactly then instead of polling. */
export function nextExpiry(book: LeaseBook, now: number): number | null {
  let next: number | null = null;
  for (const lease of book.leases.values()) {
    if (lease.expiresAt !== null && lease.expiresAt > now && (next === null || lease.expiresAt < next)) {
      next = lease.expiresAt;
    }
  }
  return next;
}
