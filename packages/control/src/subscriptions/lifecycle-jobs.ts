import type { Clock } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows, schema } from "@vpnpanel/db";
import { nextResetAt } from "@vpnpanel/domain";
import { eq, type SQL, sql } from "drizzle-orm";
import type { PlanResetAnchor, PlanResetStrategy } from "../plans/plan-rules";
import { type Actor, systemActor } from "../rbac/actor";
import { toDate, toNumber, tsParam } from "../shared/sql-values";
import { planChangeSpec, scheduleGuard, scheduleRows, scheduleSet } from "./plan-change";
import { domainAnchor, startedSchedule } from "./terms";
import { applyTransition, type TransitionRow } from "./transition-sql";

// The time-driven half of the state machine, run by the scheduler. Every function finds due rows
// through a partial index (never a scan of all subscriptions), applies one set-based transition per
// batch in its own short transaction, and is idempotent: the guards re-check the due condition, so a
// repeated or concurrent run changes nothing twice. Time comes from the injected clock.

export interface RunOptions {
  batchSize?: number;
  /**
   * Batches run at once on separate connections (expiry only: its batches claim disjoint rows with
   * SKIP LOCKED). On PGlite, one connection, they simply run one after another.
   */
  parallel?: number;
  /** Stop between batches (lost scheduler lock, shutdown). */
  signal?: AbortSignal;
  /** Called after each committed batch (metrics, the benchmark's delay measurement). */
  onBatch?: (rows: TransitionRow[], committedAt: Date) => void;
}

const DEFAULT_BATCH = 2000;

/** One batch: how many due rows it found (a full batch means more may wait) and the rows it changed. */
interface Step {
  found: number;
  rows: TransitionRow[];
}
const MAX_BATCHES_PER_RUN = 100;

export const schedulerActor = (): Actor => ({ ...systemActor(), id: "scheduler" });

export function createLifecycleJobs(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;
  const actor = schedulerActor();

  /**
   * Runs `step` batch after batch until a batch finds fewer due rows than it may take, the per-run
   * budget ends or the signal fires. Returns how many subscriptions changed, and whether due rows may
   * be left (the budget or the signal ended the run).
   */
  async function drainRun(o: RunOptions, step: (now: Date, batch: number) => Promise<Step>, parallel = 1) {
    const batch = o.batchSize ?? DEFAULT_BATCH;
    let changed = 0;
    let steps = 0;
    let more = false;
    const worker = async () => {
      while (steps < MAX_BATCHES_PER_RUN) {
        if (o.signal?.aborted) {
          more = true;
          return;
        }
        steps++;
        const { found, rows } = await step(clock.now(), batch);
        changed += rows.length;
        if (rows.length) o.onBatch?.(rows, new Date());
        // A short batch, or a full one that changed nothing (rows guarded out), ends the run.
        if (found < batch || rows.length === 0) return;
      }
      more = true;
    };
    await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
    return { changed, more };
  }
  const drain = async (o: RunOptions, step: (now: Date, batch: number) => Promise<Step>) =>
    (await drainRun(o, step)).changed;

  async function planOf(tx: DbOrTx, planId: string) {
    const [plan] = await tx.select().from(schema.plans).where(eq(schema.plans.id, planId)).limit(1);
    return plan ?? null;
  }

  /** Switches due rows (grouped by next plan) onto their next plan, starting at `startOf(row)`. */
  async function switchToNextPlans(
    tx: DbOrTx,
    now: Date,
    rows: Array<{ id: string; nextPlanId: string; started: boolean; startAt: Date }>,
    guard: SQL,
  ): Promise<TransitionRow[]> {
    const out: TransitionRow[] = [];
    const byPlan = new Map<string, typeof rows>();
    for (const r of rows) byPlan.set(r.nextPlanId, [...(byPlan.get(r.nextPlanId) ?? []), r]);
    for (const [planId, group] of byPlan) {
      const plan = await planOf(tx, planId);
      if (!plan) continue; // deleted meanwhile: ON DELETE SET NULL clears the link
      const spec = planChangeSpec(
        plan,
        group.map((r) => ({ id: r.id, started: r.started, startAt: r.startAt })),
        { now, actor, resetUsage: true, reason: "next plan", audit: { action: "subscription.next_plan" } },
      );
      const r = await applyTransition(tx, {
        ...spec,
        guard: sql`${spec.guard} AND s.next_plan_id = ${plan.id} AND (${guard})`,
      });
      out.push(...r.rows);
    }
    return out;
  }

  return {
    /**
     * Expires subscriptions whose end has passed (index subscriptions_expiry_idx); one whose plan has a
     * next plan is switched to it instead, the new period starting at the old end.
     */
    async expireDue(o: RunOptions = {}) {
      const expiry = await drainRun(
        { batchSize: 1000, ...o },
        (now, batch) =>
          db.transaction(async (tx) => {
            const r = await applyTransition(tx, {
              event: "expired",
              candidates: sql`SELECT id FROM subscriptions
              WHERE state IN ('active', 'limited') AND expires_at IS NOT NULL AND expires_at <= ${tsParam(now)}
                AND next_plan_id IS NULL
              ORDER BY expires_at LIMIT ${batch} FOR UPDATE SKIP LOCKED`,
              now,
              actor,
              reason: "expired",
              audit: { action: "subscription.expire" },
              payload: sql`jsonb_build_object('reason', 'expired')`,
            });
            return { found: r.count, rows: r.rows };
          }),
        o.parallel ?? 2,
      );
      const switched = await drain(o, (now, batch) =>
        db.transaction(async (tx) => {
          const due = await queryRows<{
            id: string;
            next_plan_id: string;
            expires_at: unknown;
            started: boolean;
          }>(
            tx,
            sql`SELECT id, next_plan_id, expires_at, started_at IS NOT NULL AS started FROM subscriptions
                WHERE state IN ('active', 'limited') AND expires_at IS NOT NULL AND expires_at <= ${tsParam(now)}
                  AND next_plan_id IS NOT NULL
                ORDER BY expires_at LIMIT ${batch}`,
          );
          const rows = due.map((d) => ({
            id: d.id,
            nextPlanId: d.next_plan_id,
            started: d.started,
            startAt: toDate(d.expires_at)!,
          }));
          return {
            found: due.length,
            rows: await switchToNextPlans(tx, now, rows, sql`s.expires_at <= ${tsParam(now)}`),
          };
        }),
      );
      // When to run next: at once if this run left due rows behind, else at the next end the index
      // knows of, instead of up to a full interval after it.
      const now = clock.now();
      const [next] = expiry.more
        ? [{ at: now }]
        : await queryRows<{ at: unknown }>(
            db,
            sql`SELECT min(expires_at) AS at FROM subscriptions
                WHERE state IN ('active', 'limited') AND expires_at IS NOT NULL AND expires_at > ${tsParam(now)}`,
          );
      return { expired: expiry.changed, switched, nextRunAt: toDate(next?.at) ?? undefined };
    },

    /** Starts held subscriptions whose deadline (fixed date or maximum hold) has come; the clock starts AT the deadline. */
    async activateHeld(o: RunOptions = {}) {
      return drain(o, (now, batch) =>
        db.transaction(async (tx) => {
          const due = await queryRows<Record<string, unknown>>(
            tx,
            sql`SELECT id, hold_mode, hold_deadline, duration_seconds::text AS duration_seconds,
                       reset_strategy, reset_anchor
                FROM subscriptions WHERE state = 'on_hold' AND hold_deadline <= ${tsParam(now)}
                ORDER BY hold_deadline LIMIT ${batch}`,
          );
          const out: TransitionRow[] = [];
          for (const event of ["activate", "hold_timeout"] as const) {
            const group = due.filter((d) => (d.hold_mode === "date") === (event === "activate"));
            if (group.length === 0) continue;
            const rows = group.map((d) => ({
              id: String(d.id),
              wasStarted: false,
              schedule: startedSchedule(
                {
                  durationSeconds: toNumber(d.duration_seconds),
                  resetStrategy: d.reset_strategy as PlanResetStrategy,
                  resetAnchor: d.reset_anchor as PlanResetAnchor,
                },
                toDate(d.hold_deadline)!,
              ),
            }));
            const r = await applyTransition(tx, {
              event,
              rows: scheduleRows(rows),
              now,
              actor,
              set: scheduleSet,
              guard: sql`${scheduleGuard} AND s.hold_deadline <= ${tsParam(now)}`,
              reason: event === "activate" ? "start date reached" : "maximum hold reached",
              audit: { action: `subscription.${event}` },
            });
            out.push(...r.rows);
          }
          return { found: due.length, rows: out };
        }),
      );
    },

    /** Zeroes the period usage of subscriptions whose reset boundary has passed (index subscriptions_reset_idx). */
    async resetPeriods(o: RunOptions = {}) {
      return drain(o, (now, batch) =>
        db.transaction(async (tx) => {
          const due = await queryRows<Record<string, unknown>>(
            tx,
            sql`SELECT id, started_at, next_reset_at, reset_strategy, reset_anchor FROM subscriptions
                WHERE next_reset_at IS NOT NULL AND next_reset_at <= ${tsParam(now)}
                ORDER BY next_reset_at LIMIT ${batch}`,
          );
          if (due.length === 0) return { found: 0, rows: [] };
          // `after = now`: after downtime a subscription resets once, not once per missed period.
          const next = due.map((d) =>
            nextResetAt(
              d.reset_strategy as PlanResetStrategy,
              domainAnchor(d.reset_anchor as PlanResetAnchor),
              toDate(d.started_at) ?? toDate(d.next_reset_at)!,
              now,
            ),
          );
          const r = await applyTransition(tx, {
            event: "reset_usage",
            rows: {
              ids: due.map((d) => String(d.id)),
              columns: {
                next_reset_at: { type: "timestamptz", values: next.map((n) => n?.toISOString() ?? null) },
              },
            },
            now,
            actor,
            resetUsage: true,
            set: { next_reset_at: sql`v.next_reset_at` },
            guard: sql`s.next_reset_at <= ${tsParam(now)}`,
            reason: "periodic reset",
            audit: { action: "subscription.periodic_reset" },
            payload: sql`jsonb_build_object('reason', 'periodic')`,
          });
          return { found: due.length, rows: r.rows };
        }),
      );
    },

    /** Moves limited subscriptions that have a next plan onto it, starting now. */
    async switchLimited(o: RunOptions = {}) {
      return drain(o, (now, batch) =>
        db.transaction(async (tx) => {
          const due = await queryRows<{ id: string; next_plan_id: string; started: boolean }>(
            tx,
            sql`SELECT id, next_plan_id, started_at IS NOT NULL AS started FROM subscriptions
                WHERE state = 'limited' AND next_plan_id IS NOT NULL
                ORDER BY state_changed_at LIMIT ${batch}`,
          );
          const rows = due.map((d) => ({
            id: d.id,
            nextPlanId: d.next_plan_id,
            started: d.started,
            startAt: now,
          }));
          return {
            found: due.length,
            rows: await switchToNextPlans(tx, now, rows, sql`s.state = 'limited'`),
          };
        }),
      );
    },
  };
}

export type LifecycleJobs = ReturnType<typeof createLifecycleJobs>;
