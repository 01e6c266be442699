import { appendFile, mkdtemp, readFile, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UsageDelta } from "../usage/delta-tracker";
import { type BatchQueueOptions, openBatchQueue } from "./batch-queue";

let dir: string;
let now = 1_000_000;
const open = (extra: Partial<BatchQueueOptions> = {}) =>
  openBatchQueue({ dir, now: () => now, firstSeq: 1, ...extra });
const d = (userId: string, up: number, down = 0): UsageDelta => ({ engine: "xray", userId, up, down });
const noChanges = { set: [], drop: [] };
const total = (batches: Array<{ deltas: UsageDelta[] }>, userId: string) =>
  batches
    .flatMap((b) => b.deltas)
    .filter((x) => x.userId === userId)
    .reduce((s, x) => s + x.up, 0);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "queue-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("batch queue", () => {
  it("appends durably with increasing sequence numbers and lists pending batches in order", async () => {
    const q = await open();
    expect((await q.append({ deltas: [d("a", 1)], changes: noChanges }))?.seq).toBe(1);
    expect((await q.append({ deltas: [d("a", 2)], changes: noChanges }))?.seq).toBe(2);
    expect(await q.append({ deltas: [], changes: noChanges })).toBeNull();
    await q.close();
    const again = await open();
    expect(again.pending().map((b) => [b.seq, b.deltas[0]?.up])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    await again.close();
  });

  it("a brand-new queue starts at 1 and can be raised above the control plane's last stored seq", async () => {
    const q = await openBatchQueue({ dir, now: () => now });
    await q.advanceSeq(41);
    await q.advanceSeq(7); // never lowers
    expect((await q.append({ deltas: [d("a", 1)], changes: noChanges }))?.seq).toBe(42);
    await q.close();
    const again = await openBatchQueue({ dir, now: () => now });
    expect(again.metrics().nextSeq).toBe(43);
    await again.close();
  });

  it("a raised seq survives a restart even before the next batch is cut", async () => {
    const q = await openBatchQueue({ dir, now: () => now });
    await q.advanceSeq(99);
    await q.close();
    const again = await openBatchQueue({ dir, now: () => now });
    expect(again.metrics().nextSeq).toBe(100);
    expect((await again.append({ deltas: [d("a", 1)], changes: noChanges }))?.seq).toBe(100);
    await again.close();
  });

  it("ack drops a batch; numbers are never reused after acks, compaction and restart", async () => {
    const q = await open({ compactMinBytes: 0 });
    for (let i = 0; i < 5; i++) await q.append({ deltas: [d("a", i + 1)], changes: noChanges });
    for (let seq = 1; seq <= 5; seq++) await q.ack(seq);
    await q.ack(3); // unknown or repeated acks are no-ops
    expect(q.pending()).toEqual([]);
    expect(q.metrics().compactions).toBeGreaterThan(0);
    await q.close();
    const again = await open({ compactMinBytes: 0 });
    expect(again.pending()).toEqual([]);
    expect((await again.append({ deltas: [d("a", 9)], changes: noChanges }))?.seq).toBe(6);
    await again.close();
  });

  it("tolerates a torn last record: it is cut off at open and appends continue cleanly", async () => {
    const q = await open();
    await q.append({ deltas: [d("a", 1)], changes: noChanges });
    await q.append({ deltas: [d("a", 2)], changes: noChanges });
    await q.close();
    const file = join(dir, "usage-queue.log");
    await appendFile(file, Buffer.from([0, 0, 0, 200, 1, 2, 3, 4, 5, 6])); // header promising 200 bytes
    const again = await open();
    expect(again.metrics().truncatedBytes).toBe(10);
    expect(again.pending().map((b) => b.seq)).toEqual([1, 2]);
    expect((await again.append({ deltas: [d("a", 3)], changes: noChanges }))?.seq).toBe(3);
    await again.close();
    const third = await open();
    expect(third.pending().map((b) => b.seq)).toEqual([1, 2, 3]);
    await third.close();
  });

  it("a record cut mid-write vanishes whole: its batch and its baseline change go together", async () => {
    const q = await open();
    await q.append({
      deltas: [d("a", 1)],
      changes: { set: [["xray:a", { generation: "g", up: 1, down: 0 }]], drop: [] },
    });
    const sizeBefore = (await stat(join(dir, "usage-queue.log"))).size;
    await q.append({
      deltas: [d("a", 5)],
      changes: { set: [["xray:a", { generation: "g", up: 6, down: 0 }]], drop: [] },
    });
    await q.close();
    await truncate(join(dir, "usage-queue.log"), sizeBefore + 7);
    const again = await open();
    expect(again.pending().map((b) => b.seq)).toEqual([1]);
    expect(again.baselines().get("xray:a")).toEqual({ generation: "g", up: 1, down: 0 });
    await again.close();
  });

  it("when full, merges never-sent batches into one under the lowest of their numbers and keeps every byte", async () => {
    const q = await open({ maxBatches: 3 });
    for (let i = 1; i <= 3; i++) await q.append({ deltas: [d("a", 10), d(`u${i}`, 1)], changes: noChanges });
    q.markSent(1); // in flight: must not be merged (the collector may have committed it)
    const merged = await q.append({ deltas: [d("a", 10)], changes: noChanges });
    // The never-sent 2 and 3 and the new batch become one batch under 2: no gap on the wire.
    expect(merged?.seq).toBe(2);
    expect(q.pending().map((b) => b.seq)).toEqual([1, 2]);
    expect(total(q.pending(), "a")).toBe(40);
    expect(total(q.pending(), "u2") + total(q.pending(), "u3")).toBe(2);
    expect(q.metrics()).toMatchObject({ merges: 1, nextSeq: 3 });
    expect((await q.append({ deltas: [d("b", 1)], changes: noChanges }))?.seq).toBe(3);
    await q.close();
    const again = await open({ maxBatches: 3 });
    expect(again.pending().map((b) => b.seq)).toEqual([1, 2, 3]);
    expect(total(again.pending(), "a")).toBe(40);
    expect(again.metrics().nextSeq).toBe(4);
    await again.close();
  });

  it("does not merge past maxSamples; the bound is reported instead", async () => {
    const q = await open({ maxBatches: 1, maxSamples: 2 });
    await q.append({ deltas: [d("a", 1), d("b", 1)], changes: noChanges });
    await q.append({ deltas: [d("c", 1)], changes: noChanges });
    expect(q.pending().map((b) => b.deltas.length)).toEqual([2, 1]);
    expect(q.metrics().overLimit).toBe(true);
    await q.close();
  });

  it("after a restart every loaded batch may have been sent: nothing is merged, the bound is reported", async () => {
    const q = await open({ maxBatches: 2 });
    await q.append({ deltas: [d("a", 1)], changes: noChanges });
    await q.append({ deltas: [d("a", 1)], changes: noChanges });
    await q.close();
    const again = await open({ maxBatches: 2 });
    await again.append({ deltas: [d("a", 1)], changes: noChanges });
    expect(again.pending()).toHaveLength(3);
    expect(again.metrics().overLimit).toBe(true);
    // New batches since the restart are mergeable again.
    await again.append({ deltas: [d("a", 1)], changes: noChanges });
    expect(again.pending().map((b) => b.seq)).toEqual([1, 2, 3]);
    expect(total(again.pending(), "a")).toBe(4);
    await again.close();
  });

  it("bounds pending bytes the same way", async () => {
    const q = await open({ maxBytes: 400 });
    for (let i = 0; i < 10; i++) await q.append({ deltas: [d(`user-${i}`, 1)], changes: noChanges });
    expect(q.metrics().pendingBytes).toBeLessThan(800);
    expect(q.pending().flatMap((b) => b.deltas)).toHaveLength(10);
    await q.close();
  });

  it("persists baselines across compaction and restart, and reports metrics", async () => {
    const q = await open({ compactMinBytes: 0 });
    await q.append({
      deltas: [d("a", 1)],
      changes: { set: [["xray:a", { generation: "g", up: 1, down: 0 }]], drop: [] },
    });
    now += 5_000;
    await q.append({
      deltas: [d("b", 1)],
      changes: { set: [["xray:b", { generation: "g", up: 1, down: 0 }]], drop: ["xray:a"] },
    });
    expect(q.metrics()).toMatchObject({ pendingBatches: 2, oldestPendingAgeMs: 5_000, nextSeq: 3 });
    await q.ack(1);
    await q.compact();
    await q.close();
    const again = await open();
    expect([...again.baselines()]).toEqual([["xray:b", { generation: "g", up: 1, down: 0 }]]);
    expect(again.pending().map((b) => b.seq)).toEqual([2]);
    expect((await readFile(join(dir, "usage-queue.log"))).length).toBe(again.metrics().fileBytes);
    await again.close();
  });
});
