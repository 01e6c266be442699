import { AppError, conflict, newId, notFound } from "@vpnpanel/common";
import { type Db, type DbOrTx, schema } from "@vpnpanel/db";
import { and, asc, eq, gt } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { isUniqueViolation } from "../shared/db-errors";
import { decodeCursor, keysetPage } from "../shared/pagination";
import { visibleTenantsSql } from "../shared/tenant-scope";
import { type PlanFields, planIssues } from "./plan-rules";

// Plans are templates: a subscription copies a plan's terms when it is created, renewed onto it or
// switched to it, so editing a plan never changes what existing subscribers were sold.

type PlanRow = typeof schema.plans.$inferSelect;

export function planView(p: PlanRow) {
  return {
    id: p.id,
    tenant_id: p.tenantId,
    name: p.name,
    quota_bytes: p.quotaBytes === null ? null : Number(p.quotaBytes),
    duration_seconds: p.durationSeconds,
    engines: p.engines,
    reset_strategy: p.resetStrategy,
    reset_anchor: p.resetAnchor,
    hold_mode: p.holdMode,
    hold_start_at: p.holdStartAt?.toISOString() ?? null,
    max_hold_seconds: p.maxHoldSeconds,
    next_plan_id: p.nextPlanId,
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
  };
}
export type PlanView = ReturnType<typeof planView>;

function check(fields: PlanFields) {
  const issues = planIssues(fields);
  const first = issues[0];
  if (first) {
    throw new AppError("validation_failed", `${first.field}: ${first.message}`, {
      field: first.field,
      issues,
    });
  }
}

const fieldsOf = (p: PlanRow): PlanFields => ({
  name: p.name,
  quotaBytes: p.quotaBytes,
  durationSeconds: p.durationSeconds,
  engines: p.engines,
  resetStrategy: p.resetStrategy,
  resetAnchor: p.resetAnchor,
  holdMode: p.holdMode,
  holdStartAt: p.holdStartAt,
  maxHoldSeconds: p.maxHoldSeconds,
  nextPlanId: p.nextPlanId,
});

const DEFAULTS: Omit<PlanFields, "name"> = {
  quotaBytes: null,
  durationSeconds: null,
  engines: ["xray", "wireguard"],
  resetStrategy: "none",
  resetAnchor: "start",
  holdMode: "none",
  holdStartAt: null,
  maxHoldSeconds: null,
  nextPlanId: null,
};

/** Loads a plan of `tenantId` inside a transaction (next-plan links and subscriptions use it). */
export async function planInTenant(tx: DbOrTx, tenantId: string, planId: string, field = "plan_id") {
  const [row] = await tx
    .select()
    .from(schema.plans)
    .where(and(eq(schema.plans.id, planId), eq(schema.plans.tenantId, tenantId)))
    .limit(1);
  if (!row) throw new AppError("validation_failed", `${field}: no such plan in this tenant`, { field });
  return row;
}

export function createPlansService(db: Db) {
  const p = schema.plans;

  async function visible(actor: Actor, id: string) {
    const [row] = await db
      .select()
      .from(p)
      .where(and(eq(p.id, id), visibleTenantsSql(actor, p.tenantId as never)))
      .limit(1);
    if (!row) throw notFound("plan");
    return row;
  }

  const nameTaken = (name: string) => conflict(`a plan named "${name}" already exists`, { field: "name" });

  return {
    async create(
      actor: Actor,
      tenantHint: string | undefined,
      input: Partial<PlanFields> & { name: string },
    ) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "plans:write");
      const fields: PlanFields = { ...DEFAULTS, ...input };
      check(fields);
      try {
        return await db.transaction(async (tx) => {
          if (fields.nextPlanId) await planInTenant(tx, tenantId, fields.nextPlanId, "next_plan_id");
          const [row] = await tx
            .insert(p)
            .values({ id: newId("pln"), tenantId, ...fields })
            .returning();
          const view = planView(row!);
          await writeAudit(tx, actor, {
            tenantId,
            action: "plan.create",
            targetType: "plan",
            targetId: row!.id,
            summary: {
              ...view,
              id: undefined,
              tenant_id: undefined,
              created_at: undefined,
              updated_at: undefined,
            },
          });
          return view;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw nameTaken(fields.name);
        throw e;
      }
    },

    async list(actor: Actor, tenantHint: string | undefined, page: { limit: number; cursor?: string }) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "plans:read");
      const rows = await db
        .select()
        .from(p)
        .where(
          and(
            eq(p.tenantId, tenantId),
            page.cursor ? gt(p.id, decodeCursor(page.cursor, "plans")) : undefined,
          ),
        )
        .orderBy(asc(p.id))
        .limit(page.limit + 1);
      const { items, nextCursor } = keysetPage(rows, page.limit, "plans", (r) => r.id);
      return { items: items.map(planView), nextCursor };
    },

    async get(actor: Actor, id: string) {
      const row = await visible(actor, id);
      requireTenantPermission(actor, row.tenantId, "plans:read");
      return planView(row);
    },

    async update(actor: Actor, id: string, patch: Partial<PlanFields>) {
      const current = await visible(actor, id);
      requireTenantPermission(actor, current.tenantId, "plans:write");
      const fields: PlanFields = { ...fieldsOf(current), ...patch };
      // Switching the hold mode away from "date" drops its start date instead of failing on it.
      if (patch.holdMode !== undefined && patch.holdMode !== "date" && patch.holdStartAt === undefined)
        fields.holdStartAt = null;
      if (patch.holdMode === "none" && patch.maxHoldSeconds === undefined) fields.maxHoldSeconds = null;
      check(fields);
      try {
        return await db.transaction(async (tx) => {
          if (fields.nextPlanId && fields.nextPlanId !== current.nextPlanId)
            await planInTenant(tx, current.tenantId, fields.nextPlanId, "next_plan_id");
          const [row] = await tx
            .update(p)
            .set({ ...fields, updatedAt: new Date() })
            .where(eq(p.id, id))
            .returning();
          if (!row) throw notFound("plan");
          const before = planView(current) as Record<string, unknown>;
          const after = planView(row) as Record<string, unknown>;
          const changed = Object.keys(after).filter(
            (k) => k !== "updated_at" && JSON.stringify(before[k]) !== JSON.stringify(after[k]),
          );
          await writeAudit(tx, actor, {
            tenantId: row.tenantId,
            action: "plan.update",
            targetType: "plan",
            targetId: id,
            summary: Object.fromEntries(changed.map((k) => [k, { before: before[k], after: after[k] }])),
          });
          return planView(row);
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw nameTaken(fields.name);
        throw e;
      }
    },

    /** Deletes a plan. Subscriptions keep the terms they copied; links to it are cleared. */
    async remove(actor: Actor, id: string) {
      const current = await visible(actor, id);
      requireTenantPermission(actor, current.tenantId, "plans:write");
      await db.transaction(async (tx) => {
        const [row] = await tx.delete(p).where(eq(p.id, id)).returning();
        if (!row) throw notFound("plan");
        await writeAudit(tx, actor, {
          tenantId: row.tenantId,
          action: "plan.delete",
          targetType: "plan",
          targetId: id,
          summary: { name: row.name },
        });
      });
    },
  };
}

export type PlansService = ReturnType<typeof createPlansService>;
