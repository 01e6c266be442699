import { AppError, type Clock, conflict, notFound, type SecretBox } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { contextOf, type SubscriptionState, transition } from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { appendOutbox } from "../outbox/outbox";
import type { PlanResetAnchor, PlanResetStrategy } from "../plans/plan-rules";
import { planInTenant } from "../plans/plans-service";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { bigParam, toBigInt, toDate, toNumber, tsParam } from "../shared/sql-values";
import { visibleTenantsSql } from "../shared/tenant-scope";
import { filterConditions, type UserFilter, userJoins } from "../users/user-queries";
import type { UsersService } from "../users/users-service";
import { planChangeSpec, scheduleGuard, scheduleRows, scheduleSet } from "./plan-change";
import { issueSubscriptionToken } from "./subscription-token";
import { startedSchedule } from "./terms";
import { applyTransition, type TransitionSpec } from "./transition-sql";

// Admin operations on a user's subscription. Each one is a state-machine event applied by ONE guarded
// statement (transition-sql.ts) that also writes the audit row and the outbox events; when the guard
// rejects the row, the domain explains why (409 with the reason). Bulk operations apply one event to
// every subscription matching a filter in one statement, audited as one action with the count.

interface Target {
  tenantId: string;
  userId: string;
  subscriptionId: string;
  state: SubscriptionState;
  startedAt: Date | null;
  durationSeconds: number | null;
  resetStrategy: PlanResetStrategy;
  resetAnchor: PlanResetAnchor;
}

type PartialSpec = Omit<TransitionSpec, "now" | "actor">;

export interface RenewInput {
  /** A fixed new end (started subscriptions only). */
  expiresAt?: Date;
  /** Extend by this much from the later of now and the current end (default: the plan's duration). */
  extendSeconds?: number;
  /** Start a new usage period (default true). */
  resetUsage?: boolean;
}

export function createSubscriptionsService(deps: {
  db: Db;
  box: SecretBox;
  clock: Clock;
  users: UsersService;
}) {
  const { db, box, clock, users } = deps;

  async function target(actor: Actor, userId: string): Promise<Target> {
    const [r] = await queryRows<Record<string, unknown>>(
      db,
      sql`SELECT s.tenant_id, s.id, s.state, s.started_at, s.duration_seconds::text AS duration_seconds,
                 s.reset_strategy, s.reset_anchor
          FROM subscriptions s WHERE s.user_id = ${userId} AND ${visibleTenantsSql(actor, sql`s.tenant_id`)}`,
    );
    if (!r) throw notFound("user");
    const t: Target = {
      tenantId: String(r.tenant_id),
      userId,
      subscriptionId: String(r.id),
      state: r.state as SubscriptionState,
      startedAt: toDate(r.started_at),
      durationSeconds: toNumber(r.duration_seconds),
      resetStrategy: r.reset_strategy as PlanResetStrategy,
      resetAnchor: r.reset_anchor as PlanResetAnchor,
    };
    requireTenantPermission(actor, t.tenantId, "subscriptions:write");
    return t;
  }

  /** Why the guarded statement changed nothing, in the domain's words. */
  async function rejection(tx: DbOrTx, t: Target, spec: TransitionSpec): Promise<AppError> {
    const [r] = await queryRows<Record<string, unknown>>(
      tx,
      sql`SELECT s.state, s.quota_bytes::text AS quota_bytes, s.expires_at, s.started_at,
                 coalesce(su.used_bytes, 0)::text AS used_bytes
          FROM subscriptions s LEFT JOIN subscription_usage su ON su.subscription_id = s.id
          WHERE s.id = ${t.subscriptionId}`,
    );
    if (!r) return notFound("user");
    const facts = {
      usedBytes: toBigInt(r.used_bytes) ?? 0n,
      quotaBytes: toBigInt(r.quota_bytes),
      expiresAt: toDate(r.expires_at),
      startedAt: toDate(r.started_at),
    };
    const result = transition(r.state as SubscriptionState, spec.event, contextOf(facts, spec.now));
    return conflict(
      result.ok ? "the subscription changed while this request ran; retry it" : `${result.message}`,
      { field: "state" },
    );
  }

  type Build = (t: Target, now: Date, tx: DbOrTx) => PartialSpec | Promise<PartialSpec>;

  /** Applies one event to the user's subscription and returns the user's view. */
  async function apply(actor: Actor, userId: string, build: Build) {
    const t = await target(actor, userId);
    const now = clock.now();
    await db.transaction(async (tx) => {
      const partial = await build(t, now, tx);
      const spec: TransitionSpec = {
        ...(partial.rows ? {} : { candidates: sql`SELECT ${t.subscriptionId}::text` }),
        ...partial,
        now,
        actor,
      };
      const r = await applyTransition(tx, spec);
      if (r.count === 0) throw await rejection(tx, t, spec);
    });
    return users.get(actor, userId);
  }

  function runBulk(
    actor: Actor,
    tenantHint: string | undefined,
    filter: UserFilter,
    action: string,
    summary: Record<string, unknown>,
    spec: Omit<TransitionSpec, "now" | "actor" | "candidates" | "audit" | "returnRows">,
  ) {
    const tenantId = resolveTenant(actor, tenantHint);
    requireTenantPermission(actor, tenantId, "subscriptions:write");
    const now = clock.now();
    const candidates = sql`SELECT s.id ${userJoins} WHERE ${sql.join(filterConditions(tenantId, filter), sql` AND `)}`;
    return db.transaction(async (tx) => {
      const r = await applyTransition(tx, {
        ...spec,
        candidates,
        now,
        actor,
        audit: "none",
        returnRows: false,
      });
      await writeAudit(tx, actor, {
        tenantId,
        action,
        targetType: "subscription",
        summary: { ...summary, filter: filterSummary(filter), count: r.count },
      });
      return { matched: r.count };
    });
  }

  return {
    /** Renews: extends the end (or sets it) and, by default, starts a new usage period. */
    renew(actor: Actor, userId: string, input: RenewInput) {
      return apply(actor, userId, (t, now) => {
        if (input.expiresAt && t.startedAt === null) {
          throw new AppError(
            "validation_failed",
            "expires_at: the subscription is on hold; its end is set when it starts (send extend_seconds)",
            { field: "expires_at" },
          );
        }
        if (input.expiresAt && input.expiresAt.getTime() <= now.getTime()) {
          throw new AppError("validation_failed", "expires_at: must be in the future", {
            field: "expires_at",
          });
        }
        const ext =
          input.extendSeconds === undefined ? sql`s.duration_seconds` : sql`${input.extendSeconds}::bigint`;
        const expires = input.expiresAt
          ? sql`CASE WHEN s.started_at IS NULL THEN s.expires_at ELSE ${tsParam(input.expiresAt)} END`
          : extendedEnd(ext, now);
        return {
          event: "renew",
          resetUsage: input.resetUsage ?? true,
          set: {
            expires_at: expires,
            // A held subscription has no end yet: the extension lengthens the period it will get.
            duration_seconds:
              input.extendSeconds === undefined
                ? sql`s.duration_seconds`
                : sql`CASE WHEN s.started_at IS NULL AND s.duration_seconds IS NOT NULL
                        THEN s.duration_seconds + ${input.extendSeconds}::bigint ELSE s.duration_seconds END`,
          },
          audit: {
            action: "subscription.renew",
            summary: sql`jsonb_build_object('expires_at', ${input.expiresAt?.toISOString() ?? null}::text,
              'extend_seconds', ${input.extendSeconds ?? null}::bigint, 'reset_usage', ${input.resetUsage ?? true}::boolean)`,
          },
        };
      });
    },

    /** Puts the subscription on another plan of its tenant; a new period starts now. */
    changePlan(actor: Actor, userId: string, input: { planId: string; resetUsage?: boolean }) {
      return apply(actor, userId, async (t, now, tx) => {
        const plan = await planInTenant(tx, t.tenantId, input.planId);
        return planChangeSpec(plan, [{ id: t.subscriptionId, started: t.startedAt !== null, startAt: now }], {
          now,
          actor,
          resetUsage: input.resetUsage ?? true,
          audit: {
            action: "subscription.change_plan",
            summary: sql`jsonb_build_object('plan_id', ${plan.id}::text, 'reset_usage', ${input.resetUsage ?? true}::boolean)`,
          },
        });
      });
    },

    /** Sets the quota (null: unlimited) or adds to it. Lowering it below the usage limits the user. */
    setQuota(actor: Actor, userId: string, input: { quotaBytes?: bigint | null; addBytes?: bigint }) {
      return apply(actor, userId, () => {
        const quota =
          input.addBytes !== undefined
            ? sql`CASE WHEN s.quota_bytes IS NULL THEN NULL ELSE s.quota_bytes + ${input.addBytes.toString()}::bigint END`
            : bigParam(input.quotaBytes ?? null);
        return {
          event: "raise_quota",
          set: { quota_bytes: quota },
          audit: {
            action: "subscription.set_quota",
            summary: sql`jsonb_build_object('quota_bytes', ${input.quotaBytes === undefined ? null : (input.quotaBytes?.toString() ?? "unlimited")}::text,
              'add_bytes', ${input.addBytes?.toString() ?? null}::text)`,
          },
        };
      });
    },

    resetUsage(actor: Actor, userId: string) {
      return apply(actor, userId, () => ({ event: "reset_usage", resetUsage: true }));
    },

    disable(actor: Actor, userId: string, reason?: string) {
      return apply(actor, userId, () => ({
        event: "disable",
        reason: reason ? `admin: ${reason}` : "admin",
        audit: {
          action: "subscription.disable",
          summary: sql`jsonb_build_object('reason', ${reason ?? null}::text)`,
        },
      }));
    },

    enable(actor: Actor, userId: string) {
      return apply(actor, userId, () => ({ event: "enable" }));
    },

    /** Starts a held subscription now instead of at its first connection or deadline. */
    activate(actor: Actor, userId: string) {
      return apply(actor, userId, (t, now) => ({
        event: "activate",
        rows: scheduleRows([{ id: t.subscriptionId, wasStarted: false, schedule: startedSchedule(t, now) }]),
        set: scheduleSet,
        guard: scheduleGuard,
        reason: "activated by admin",
      }));
    },

    /** Revokes the subscription URL and issues a new one; the old token stops working at once. */
    async reissueToken(actor: Actor, userId: string) {
      const t = await target(actor, userId);
      const token = issueSubscriptionToken(box, t.subscriptionId);
      const now = clock.now();
      await db.transaction(async (tx) => {
        const [row] = await queryRows<{ revision: unknown }>(
          tx,
          sql`UPDATE subscriptions SET token_hash = ${token.hash}, token_enc = ${token.enc},
                revision = revision + 1, updated_at = ${tsParam(now)}
              WHERE id = ${t.subscriptionId} RETURNING revision::text AS revision`,
        );
        if (!row) throw notFound("user");
        await appendOutbox(tx, {
          tenantId: t.tenantId,
          topic: "user.token_reissued",
          subjectId: t.subscriptionId,
          payload: { subscription_id: t.subscriptionId, user_id: userId, revision: toNumber(row.revision) },
        });
        await writeAudit(tx, actor, {
          tenantId: t.tenantId,
          action: "subscription.reissue_token",
          targetType: "subscription",
          targetId: t.subscriptionId,
          summary: { user_id: userId },
        });
      });
      return users.get(actor, userId);
    },

    /** Extends the end of every matching subscription that has one (held ones: their duration). */
    bulkExtend(actor: Actor, tenantHint: string | undefined, filter: UserFilter, extendSeconds: number) {
      const ext = sql`${extendSeconds}::bigint`;
      return runBulk(
        actor,
        tenantHint,
        filter,
        "subscription.bulk_extend",
        { extend_seconds: extendSeconds },
        {
          event: "renew",
          set: {
            expires_at: extendedEnd(ext, clock.now()),
            duration_seconds: sql`CASE WHEN s.started_at IS NULL AND s.duration_seconds IS NOT NULL
            THEN s.duration_seconds + ${ext} ELSE s.duration_seconds END`,
          },
          guard: sql`s.expires_at IS NOT NULL OR (s.started_at IS NULL AND s.duration_seconds IS NOT NULL)`,
        },
      );
    },

    /** Adds bytes to the quota of every matching subscription that has one (unlimited ones stay so). */
    bulkAddQuota(actor: Actor, tenantHint: string | undefined, filter: UserFilter, addBytes: bigint) {
      return runBulk(
        actor,
        tenantHint,
        filter,
        "subscription.bulk_add_quota",
        { add_bytes: addBytes.toString() },
        {
          event: "raise_quota",
          set: { quota_bytes: sql`s.quota_bytes + ${addBytes.toString()}::bigint` },
          guard: sql`s.quota_bytes IS NOT NULL`,
        },
      );
    },
  };
}

/** A started subscription's end moved `ext` seconds past the later of now and its current end. */
function extendedEnd(ext: SQL, now: Date): SQL {
  return sql`CASE WHEN s.started_at IS NULL OR s.expires_at IS NULL OR ${ext} IS NULL THEN s.expires_at
    ELSE greatest(s.expires_at, ${tsParam(now)}) + ${ext} * interval '1 second' END`;
}

function filterSummary(f: UserFilter): Record<string, unknown> {
  return {
    ...(f.username ? { username: f.username } : {}),
    ...(f.note ? { note: f.note } : {}),
    ...(f.status ? { status: f.status } : {}),
    ...(f.planId ? { plan_id: f.planId } : {}),
    ...(f.userIds ? { user_ids: f.userIds.length } : {}),
  };
}

export type SubscriptionsService = ReturnType<typeof createSubscriptionsService>;
