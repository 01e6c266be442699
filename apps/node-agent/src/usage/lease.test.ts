import { describe, expect, it } from "vitest";
import {
  createLeaseBook,
  decideRemovals,
  grantLease,
  nextExpiry,
  recordBatchUsage,
  revokeLease,
  usedSinceLease,
} from "./lease";

const d = (userId: string, up: number, down: number) => ({ engine: "xray" as const, userId, up, down });
const HOUR = 3_600_000;

describe("offline lease", () => {
  it("removes a user once usage since the lease reaches the remaining budget", () => {
    const book = createLeaseBook();
    grantLease(book, "a", { remainingBytes: 1000, expiresAt: null, asOfSeq: 10 });
    recordBatchUsage(book, 11, [d("a", 300, 300)]);
    expect(decideRemovals(book, 0)).toEqual([]);
    recordBatchUsage(book, 12, [d("a", 200, 200)]);
    expect(decideRemovals(book, 0)).toEqual([{ userId: "a", reason: "quota", usedSinceLease: 1000 }]);
  });
  it("ignores usage the lease already accounts for, and a newer lease forgets it", () => {
    const book = createLeaseBook();
    grantLease(book, "a", { remainingBytes: 1000, expiresAt: null, asOfSeq: 10 });
    recordBatchUsage(book, 9, [d("a", 5000, 0)]); // already in the lease
    recordBatchUsage(book, 11, [d("a", 400, 0)]);
    recordBatchUsage(book, 12, [d("a", 400, 0)]);
    expect(usedSinceLease(book, "a")).toBe(800);
    // The control plane committed seq 11 and sends a fresh budget.
    grantLease(book, "a", { remainingBytes: 600, expiresAt: null, asOfSeq: 11 });
    expect(usedSinceLease(book, "a")).toBe(400);
    expect(decideRemovals(book, 0)).toEqual([]);
  });
  it("an older lease arriving late never replaces a newer one", () => {
    const book = createLeaseBook();
    grantLease(book, "a", { remainingBytes: 10, expiresAt: null, asOfSeq: 20 });
    grantLease(book, "a", { remainingBytes: 1e9, expiresAt: null, asOfSeq: 5 });
    expect(book.leases.get("a")?.remainingBytes).toBe(10);
  });
  it("removes at expiry exactly, by the injected clock; expiry wins over quota", () => {
    const book = createLeaseBook();
    const t0 = Date.UTC(2026, 0, 1);
    grantLease(book, "a", { remainingBytes: 0, expiresAt: t0 + HOUR, asOfSeq: 0 });
    grantLease(book, "b", { remainingBytes: null, expiresAt: t0 + 2 * HOUR, asOfSeq: 0 });
    grantLease(book, "c", { remainingBytes: null, expiresAt: null, asOfSeq: 0 });
    expect(decideRemovals(book, t0 + HOUR - 1).map((x) => [x.userId, x.reason])).toEqual([["a", "quota"]]);
    expect(decideRemovals(book, t0 + HOUR).map((x) => [x.userId, x.reason])).toEqual([["a", "expired"]]);
    expect(decideRemovals(book, t0 + 2 * HOUR).map((x) => x.userId)).toEqual(["a", "b"]);
    expect(nextExpiry(book, t0)).toBe(t0 + HOUR);
    expect(nextExpiry(book, t0 + HOUR)).toBe(t0 + 2 * HOUR);
  });
  it("users without a lease are not enforced; revoking forgets a user", () => {
    const book = createLeaseBook();
    recordBatchUsage(book, 1, [d("x", 1e12, 0)]);
    expect(decideRemovals(book, 0)).toEqual([]);
    grantLease(book, "a", { remainingBytes: 1, expiresAt: null, asOfSeq: 0 });
    recordBatchUsage(book, 1, [d("a", 5, 0)]);
    revokeLease(book, "a");
    expect(decideRemovals(book, 0)).toEqual([]);
  });
});
