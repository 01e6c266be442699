import type { FieldIssue } from "@vpnpanel/domain";

// Plan consistency rules, pure so they are tested without a database. Field names are the API's.

export const ENGINES = ["xray", "wireguard"] as const;
export type Engine = (typeof ENGINES)[number];
export type HoldMode = "none" | "first_connection" | "date";
export type PlanResetStrategy = "none" | "day" | "week" | "month" | "year";
export type PlanResetAnchor = "start" | "calendar";

export interface PlanFields {
  name: string;
  quotaBytes: bigint | null;
  durationSeconds: number | null;
  engines: Engine[];
  resetStrategy: PlanResetStrategy;
  resetAnchor: PlanResetAnchor;
  holdMode: HoldMode;
  holdStartAt: Date | null;
  maxHoldSeconds: number | null;
  nextPlanId: string | null;
}

export function planIssues(p: PlanFields): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (p.name.trim() === "") issues.push({ field: "name", message: "must not be blank" });
  if (p.engines.length === 0) issues.push({ field: "engines", message: "must allow at least one engine" });
  if (new Set(p.engines).size !== p.engines.length)
    issues.push({ field: "engines", message: "must not repeat an engine" });
  if (p.quotaBytes !== null && p.quotaBytes < 0n)
    issues.push({ field: "quota_bytes", message: "must not be negative" });
  if (p.holdMode === "date" && p.holdStartAt === null)
    issues.push({ field: "hold_start_at", message: "is required when hold_mode is date" });
  if (p.holdMode !== "date" && p.holdStartAt !== null)
    issues.push({ field: "hold_start_at", message: "is only allowed when hold_mode is date" });
  if (p.holdMode === "none" && p.maxHoldSeconds !== null)
    issues.push({ field: "max_hold_seconds", message: "is only allowed with an on-hold mode" });
  if (p.resetStrategy === "none" && p.resetAnchor === "calendar")
    issues.push({ field: "reset_anchor", message: "calendar needs a reset_strategy other than none" });
  return issues;
}

/** The engines a subscriber is served: the plan's, narrowed by the user's override (null = no override). */
export function effectiveEngines(base: readonly Engine[], override: readonly Engine[] | null): Engine[] {
  if (override === null) return ENGINES.filter((e) => base.includes(e));
  return ENGINES.filter((e) => base.includes(e) && override.includes(e));
}
