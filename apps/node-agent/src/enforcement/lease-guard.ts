// Local enforcement of leases (ARCHITECTURE.md §5.5) on top of the pure lease book (usage/lease.ts).
// While the control plane is unreachable — or always, when Policy.enforce_leases_online says so — a
// user whose remaining bytes are used up, or whose lease expired, is cut: removed from the engines
// (with a final reading) but kept in the desired state. A cut user comes back only when a newer lease
// for them arrives that allows it (quota raised, plan renewed), never because the link came back.
//
// On disk (leases.json, 0600): the leases and the cut set, small and rewritten atomically. The usage
// since each lease is not stored: it is rebuilt at start from the unacked batches in the usage queue,
// which is exactly the usage the control plane has not counted yet (while offline nothing is acked).

import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { UsageDelta } from "../usage/delta-tracker";
import {
  createLeaseBook,
  grantLease,
  type Lease,
  type LeaseDecision,
  nextExpiry,
  type RemovalReason,
  recordBatchUsage,
  revokeLease,
  usedSinceLease,
} from "../usage/lease";

export interface LeaseGuard {
  /** Installs the user's lease (null = no local limit). An older lease never replaces a newer one. */
  grant(userId: string, lease: Lease | null): void;
  /** The user left the desired state. */
  forget(userId: string): void;
  onBatch(seq: number, deltas: readonly UsageDelta[]): void;
  /** Users to cut now: leased, over budget or expired, not cut yet. */
  due(now: number): LeaseDecision[];
  markCut(decisions: readonly LeaseDecision[]): void;
  /** Cut users for whom a newer lease arrived that no longer requires the cut. */
  restorable(now: number): string[];
  markRestored(ids: readonly string[]): void;
  isCut(userId: string): boolean;
  cutCount(): number;
  leaseCount(): number;
  /** Cuts made since the previous call (HealthReport.users_cut_locally). */
  takeCutsSinceReport(): number;
  nextExpiry(now: number): number | null;
  persist(force?: boolean): Promise<void>;
}

interface StoredLeases {
  version: 1;
  leases: Array<[userId: string, remaining: number | null, expiresAt: number | null, asOfSeq: number]>;
  cut: Array<[userId: string, reason: RemovalReason]>;
}

export const LEASES_FILE = "leases.json";

function exhausted(lease: Lease, used: number, now: number): RemovalReason | null {
  if (lease.expiresAt !== null && now >= lease.expiresAt) return "expired";
  if (lease.remainingBytes !== null && used >= lease.remainingBytes) return "quota";
  return null;
}

export async function openLeaseGuard(dir: string): Promise<LeaseGuard> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, LEASES_FILE);
  const book = createLeaseBook();
  const cut = new Map<string, RemovalReason>();
  /** Cut users that got a lease after their cut: candidates to come back. */
  const regranted = new Set<string>();
  let dirty = false;
  let cutsSinceReport = 0;

  const text = await readFile(path, "utf8").catch(() => null);
  if (text) {
    const stored = JSON.parse(text) as StoredLeases;
    for (const [userId, remainingBytes, expiresAt, asOfSeq] of stored.leases)
      book.leases.set(userId, { remainingBytes, expiresAt, asOfSeq });
    for (const [userId, reason] of stored.cut) cut.set(userId, reason);
  }

  return {
    grant(userId, lease) {
      if (lease === null) {
        if (book.leases.has(userId)) dirty = true;
        revokeLease(book, userId);
      } else {
        const before = book.leases.get(userId);
        grantLease(book, userId, lease);
        if (book.leases.get(userId) !== before) dirty = true;
      }
      if (cut.has(userId)) regranted.add(userId);
    },
    forget(userId) {
      if (book.leases.has(userId) || cut.has(userId)) dirty = true;
      revokeLease(book, userId);
      cut.delete(userId);
      regranted.delete(userId);
    },
    onBatch: (seq, deltas) => recordBatchUsage(book, seq, deltas),
    due(now) {
      const out: LeaseDecision[] = [];
      for (const [userId, lease] of book.leases) {
        if (cut.has(userId)) continue;
        const used = usedSinceLease(book, userId);
        const reason = exhausted(lease, used, now);
        if (reason) out.push({ userId, reason, usedSinceLease: used });
      }
      return out;
    },
    markCut(decisions) {
      for (const d of decisions) {
        cut.set(d.userId, d.reason);
        regranted.delete(d.userId);
        cutsSinceReport++;
      }
      if (decisions.length > 0) dirty = true;
    },
    restorable(now) {
      const out: string[] = [];
      for (const userId of regranted) {
        const lease = book.leases.get(userId);
        if (!lease || exhausted(lease, usedSinceLease(book, userId), now) === null) out.push(userId);
        else regranted.delete(userId);
      }
      return out;
    },
    markRestored(ids) {
      for (const id of ids) {
        cut.delete(id);
        regranted.delete(id);
      }
      if (ids.length > 0) dirty = true;
    },
    isCut: (userId) => cut.has(userId),
    cutCount: () => cut.size,
    leaseCount: () => book.leases.size,
    takeCutsSinceReport() {
      const n = cutsSinceReport;
      cutsSinceReport = 0;
      return n;
    },
    nextExpiry: (now) => nextExpiry(book, now),
    async persist(force = false) {
      if (!dirty && !force) return;
      dirty = false;
      const body: StoredLeases = {
        version: 1,
        leases: [...book.leases].map(([id, l]) => [id, l.remainingBytes, l.expiresAt, l.asOfSeq]),
        cut: [...cut],
      };
      const tmp = `${path}.tmp`;
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(JSON.stringify(body));
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    },
  };
}
