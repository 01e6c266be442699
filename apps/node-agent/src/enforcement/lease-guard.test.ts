import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openLeaseGuard } from "./lease-guard";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lease-guard-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const d = (userId: string, up: number) => ({ engine: "xray" as const, userId, up, down: 0 });

describe("lease guard", () => {
  it("a cut user comes back only with a newer lease that allows it", async () => {
    const g = await openLeaseGuard(dir);
    g.grant("a", { remainingBytes: 100, expiresAt: null, asOfSeq: 0 });
    g.onBatch(1, [d("a", 100)]);
    const due = g.due(0);
    expect(due).toEqual([{ userId: "a", reason: "quota", usedSinceLease: 100 }]);
    g.markCut(due);
    expect(g.due(0)).toEqual([]);
    expect(g.restorable(0)).toEqual([]);
    // The same lease again: still spent.
    g.grant("a", { remainingBytes: 100, expiresAt: null, asOfSeq: 0 });
    expect(g.restorable(0)).toEqual([]);
    // A lease that already counts batch 1 and grants more.
    g.grant("a", { remainingBytes: 50, expiresAt: null, asOfSeq: 1 });
    expect(g.restorable(0)).toEqual(["a"]);
    g.markRestored(["a"]);
    expect(g.isCut("a")).toBe(false);
    expect(g.takeCutsSinceReport()).toBe(1);
    expect(g.takeCutsSinceReport()).toBe(0);
  });

  it("leases and cuts persist; usage is rebuilt by the caller from unacked batches", async () => {
    const g = await openLeaseGuard(dir);
    g.grant("a", { remainingBytes: 10, expiresAt: 5_000, asOfSeq: 3 });
    g.grant("b", { remainingBytes: 10, expiresAt: null, asOfSeq: 3 });
    g.markCut([{ userId: "b", reason: "quota", usedSinceLease: 10 }]);
    await g.persist();
    const again = await openLeaseGuard(dir);
    expect(again.isCut("b")).toBe(true);
    expect(again.nextExpiry(0)).toBe(5_000);
    again.onBatch(3, [d("a", 100)]); // already counted in the lease
    again.onBatch(4, [d("a", 9)]);
    expect(again.due(0)).toEqual([]);
    again.onBatch(5, [d("a", 1)]);
    expect(again.due(0)).toEqual([{ userId: "a", reason: "quota", usedSinceLease: 10 }]);
    expect(again.due(5_000)[0]?.reason).toBe("expired");
  });

  it("forgetting a user drops their lease and cut", async () => {
    const g = await openLeaseGuard(dir);
    g.grant("a", { remainingBytes: 0, expiresAt: null, asOfSeq: 0 });
    g.markCut(g.due(0));
    g.forget("a");
    expect(g.isCut("a")).toBe(false);
    expect(g.leaseCount()).toBe(0);
  });
});
