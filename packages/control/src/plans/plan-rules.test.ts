import { describe, expect, it } from "vitest";
import { effectiveEngines, type PlanFields, planIssues } from "./plan-rules";

const base: PlanFields = {
  name: "Monthly 50G",
  quotaBytes: 50n * 2n ** 30n,
  durationSeconds: 30 * 86_400,
  engines: ["xray", "wireguard"],
  resetStrategy: "none",
  resetAnchor: "start",
  holdMode: "none",
  holdStartAt: null,
  maxHoldSeconds: null,
  nextPlanId: null,
};

describe("plan rules", () => {
  it("accepts a consistent plan", () => {
    expect(planIssues(base)).toEqual([]);
  });

  it("names each inconsistent field", () => {
    const fields = (p: Partial<PlanFields>) => planIssues({ ...base, ...p }).map((i) => i.field);
    expect(fields({ engines: [] })).toEqual(["engines"]);
    expect(fields({ engines: ["xray", "xray"] })).toEqual(["engines"]);
    expect(fields({ name: "  " })).toEqual(["name"]);
    expect(fields({ holdMode: "date" })).toEqual(["hold_start_at"]);
    expect(fields({ holdStartAt: new Date() })).toEqual(["hold_start_at"]);
    expect(fields({ maxHoldSeconds: 60 })).toEqual(["max_hold_seconds"]);
    expect(fields({ resetAnchor: "calendar" })).toEqual(["reset_anchor"]);
    expect(fields({ holdMode: "first_connection", maxHoldSeconds: 60 })).toEqual([]);
  });

  it("narrows engines by the override and keeps a stable order", () => {
    expect(effectiveEngines(["wireguard", "xray"], null)).toEqual(["xray", "wireguard"]);
    expect(effectiveEngines(["xray", "wireguard"], ["wireguard"])).toEqual(["wireguard"]);
    expect(effectiveEngines(["xray"], ["wireguard"])).toEqual([]);
  });
});
