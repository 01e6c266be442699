import { mkdtemp, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UsageReading } from "../engines/types";
import { openBatchQueue } from "../queue/batch-queue";
import { createUsageRecorder } from "./usage-recorder";

let dir: string;
const open = async () => {
  const queue = await openBatchQueue({ dir, firstSeq: 1, now: () => 0 });
  return { queue, recorder: createUsageRecorder(queue) };
};
const r = (up: number, generation = "core-1"): UsageReading => ({
  userId: "alice",
  up,
  down: up * 10,
  generation,
});
const counted = (batches: Array<{ deltas: Array<{ userId: string; up: number }> }>) =>
  batches.flatMap((b) => b.deltas).reduce((s, x) => s + x.up, 0);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "recorder-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("usage recorder: no byte lost, none counted twice", () => {
  it("an agent restart does not re-count what was already recorded", async () => {
    let { queue, recorder } = await open();
    await recorder.record("xray", [r(100)]);
    await queue.close();
    ({ queue, recorder } = await open());
    expect(await recorder.record("xray", [r(100)])).toEqual([]);
    await recorder.record("xray", [r(130)]);
    expect(counted(queue.pending())).toBe(130);
    await queue.close();
  });

  it("killed after reading counters but before persisting: the next reading carries those bytes", async () => {
    let { queue, recorder } = await open();
    await recorder.record("xray", [r(100)]);
    // Read 160 here, then die before recording it.
    await queue.close();
    ({ queue, recorder } = await open());
    await recorder.record("xray", [r(170)]);
    expect(counted(queue.pending())).toBe(170);
    await queue.close();
  });

  it("killed mid-append: the torn batch and its baseline vanish together and are re-counted once", async () => {
    let { queue, recorder } = await open();
    await recorder.record("xray", [r(100)]);
    const size = (await stat(join(dir, "usage-queue.log"))).size;
    await recorder.record("xray", [r(150)]);
    await queue.close();
    await truncate(join(dir, "usage-queue.log"), size + 5);
    ({ queue, recorder } = await open());
    await recorder.record("xray", [r(160)]);
    expect(counted(queue.pending())).toBe(160);
    await queue.close();
  });

  it("acked batches leave the queue but their baselines stay", async () => {
    const { queue, recorder } = await open();
    const [first] = await recorder.record("xray", [r(100)]);
    await queue.ack(first?.seq as number);
    await recorder.record("xray", [r(120)]);
    expect(counted(queue.pending())).toBe(20);
    await queue.close();
  });

  it("a core restart (new generation) and a removal's final reading are both counted exactly", async () => {
    const { queue, recorder } = await open();
    await recorder.record("xray", [r(100)]);
    await recorder.record("xray", [r(500, "core-2")]); // restarted core, already past the old value
    await recorder.recordFinal("xray", [r(520, "core-2")]);
    await recorder.record("xray", [r(7, "core-2")]); // re-added user counts from zero
    expect(counted(queue.pending())).toBe(100 + 500 + 20 + 7);
    await queue.close();
  });

  it("splits a large reading into batches of at most maxSamplesPerBatch, each with its own baselines", async () => {
    const queue = await openBatchQueue({ dir, firstSeq: 1, now: () => 0 });
    const recorder = createUsageRecorder(queue, { maxSamplesPerBatch: 2 });
    const users = ["a", "b", "c", "d", "e"].map((userId, i) => ({ userId, up: i, down: 0, generation: "g" }));
    const batches = await recorder.record("xray", users);
    expect(batches.map((b) => [b.seq, b.deltas.length])).toEqual([
      [1, 2],
      [2, 2],
    ]); // "a" has no usage
    await queue.close();
    // Every part carried its own users' baselines ("a" rode with the last part).
    const again = await openBatchQueue({ dir, firstSeq: 1, now: () => 0 });
    expect(again.baselines().size).toBe(5);
    await again.close();
  });

  it("prune forgets baselines of ended generations only", async () => {
    const { queue, recorder } = await open();
    await recorder.record("xray", [r(100, "old"), { userId: "bob", up: 1, down: 1, generation: "new" }]);
    await recorder.prune("xray", ["new"]);
    expect([...queue.baselines()].map(([key]) => key)).toEqual(["xray:bob"]);
    await queue.close();
  });
});
