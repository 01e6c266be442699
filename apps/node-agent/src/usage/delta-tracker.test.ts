import { describe, expect, it } from "vitest";
import type { UsageReading } from "../engines/types";
import {
  applyBaselineChanges,
  type Baseline,
  computeDeltas,
  mergeDeltas,
  staleBaselines,
} from "./delta-tracker";

const r = (userId: string, up: number, down: number, generation = "g1"): UsageReading => ({
  userId,
  up,
  down,
  generation,
});

/** Feeds readings through the tracker like the recorder does and returns the deltas. */
function step(baselines: Map<string, Baseline>, readings: UsageReading[], final = false) {
  const { deltas, changes } = computeDeltas(baselines, "xray", readings, { final });
  applyBaselineChanges(baselines, changes);
  return deltas.map((d) => [d.userId, d.up, d.down]);
}

describe("delta tracker", () => {
  it("first sight counts the whole value; later samples count the growth; no growth, no delta", () => {
    const b = new Map<string, Baseline>();
    expect(step(b, [r("a", 100, 1000)])).toEqual([["a", 100, 1000]]);
    expect(step(b, [r("a", 150, 1000)])).toEqual([["a", 50, 0]]);
    expect(step(b, [r("a", 150, 1000)])).toEqual([]);
  });
  it("a counter that went down means the core restarted: the new value is all new traffic", () => {
    const b = new Map<string, Baseline>();
    step(b, [r("a", 100, 1000)]);
    expect(step(b, [r("a", 30, 2000)])).toEqual([["a", 30, 2000]]);
    expect(step(b, [r("a", 40, 2100)])).toEqual([["a", 10, 100]]);
  });
  it("a new generation counts the whole value even when it already grew past the old baseline", () => {
    const b = new Map<string, Baseline>();
    step(b, [r("a", 100, 100)]);
    expect(step(b, [r("a", 500, 500, "g2")])).toEqual([["a", 500, 500]]);
  });
  it("a final reading is added in and drops the baseline, so a re-added user counts from zero", () => {
    const b = new Map<string, Baseline>();
    step(b, [r("a", 100, 100)]);
    expect(step(b, [r("a", 120, 130)], true)).toEqual([["a", 20, 30]]);
    expect(b.has("xray:a")).toBe(false);
    expect(step(b, [r("a", 200, 200)])).toEqual([["a", 200, 200]]);
  });
  it("a reading and a final for the same user in one call are summed, not double counted", () => {
    const b = new Map<string, Baseline>();
    step(b, [r("a", 10, 10)]);
    expect(step(b, [r("a", 15, 10), r("a", 18, 12)], true)).toEqual([["a", 8, 2]]);
  });
  it("records only changed baselines", () => {
    const b = new Map<string, Baseline>([["xray:a", { generation: "g1", up: 1, down: 1 }]]);
    const { changes } = computeDeltas(b, "xray", [r("a", 1, 1), r("b", 0, 0)]);
    expect(changes).toEqual({ set: [["xray:b", { generation: "g1", up: 0, down: 0 }]], drop: [] });
  });
  it("merges deltas per engine and user, and finds baselines of ended generations", () => {
    expect(
      mergeDeltas(
        [{ engine: "xray", userId: "a", up: 1, down: 2 }],
        [
          { engine: "xray", userId: "a", up: 3, down: 4 },
          { engine: "wireguard", userId: "a", up: 5, down: 6 },
        ],
      ),
    ).toEqual([
      { engine: "xray", userId: "a", up: 4, down: 6 },
      { engine: "wireguard", userId: "a", up: 5, down: 6 },
    ]);
    const b = new Map<string, Baseline>([
      ["xray:a", { generation: "old", up: 1, down: 1 }],
      ["xray:b", { generation: "new", up: 1, down: 1 }],
      ["wireguard:c", { generation: "old", up: 1, down: 1 }],
    ]);
    expect(staleBaselines(b, "xray", new Set(["new"]))).toEqual(["xray:a"]);
  });
});
