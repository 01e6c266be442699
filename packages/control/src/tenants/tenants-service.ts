import { conflict, newId, notFound } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { and, asc, eq, gt, inArray, type SQL, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { type Actor, requirePlatform, requireTenantPermission } from "../rbac/actor";
import { isUniqueViolation } from "../shared/db-errors";
import { decodeCursor, keysetPage } from "../shared/pagination";

export interface TenantInput {
  name: string;
  slug: string;
  settings?: Record<string, unknown>;
}

export function createTenantsService(db: Db) {
  const t = schema.tenants;
  return {
    async create(actor: Actor, input: TenantInput) {
      requirePlatform(actor, "tenants:write");
      try {
        return await db.transaction(async (tx) => {
          const [row] = await tx
            .insert(t)
            .values({ id: newId("tnt"), name: input.name, slug: input.slug, settings: input.settings ?? {} })
            .returning();
          await writeAudit(tx, actor, {
            tenantId: row!.id,
            action: "tenant.create",
            targetType: "tenant",
            targetId: row!.id,
            summary: { name: input.name, slug: input.slug },
          });
          return row!;
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw conflict(`a tenant with slug "${input.slug}" already exists`, { field: "slug" });
        throw e;
      }
    },

    async list(actor: Actor, page: { limit: number; cursor?: string }) {
      const where: SQL[] = [];
      if (!actor.isPlatformOwner) {
        const ids = [...actor.memberships.keys()];
        where.push(ids.length ? inArray(t.id, ids) : sql`false`);
      }
      if (page.cursor) where.push(gt(t.id, decodeCursor(page.cursor, "tenants")));
      const rows = await db
        .select()
        .from(t)
        .where(and(...where))
        .orderBy(asc(t.id))
        .limit(page.limit + 1);
      return keysetPage(rows, page.limit, "tenants", (r) => r.id);
    },

    async get(actor: Actor, id: string) {
      requireTenantPermission(actor, id, "tenant:read");
      const [row] = await db.select().from(t).where(eq(t.id, id)).limit(1);
      if (!row) throw notFound("tenant");
      return row;
    },

    async update(
      actor: Actor,
      id: string,
      patch: Partial<TenantInput> & { status?: "active" | "suspended" },
    ) {
      // Settings belong to the tenant's owner; name, slug and status to the platform.
      if (patch.name !== undefined || patch.slug !== undefined || patch.status !== undefined) {
        requirePlatform(actor, "tenants:write");
      } else {
        requireTenantPermission(actor, id, "tenant:settings");
      }
      try {
        return await db.transaction(async (tx) => {
          const [before] = await tx.select().from(t).where(eq(t.id, id)).for("update");
          if (!before) throw notFound("tenant");
          const [row] = await tx
            .update(t)
            .set({ ...patch, updatedAt: new Date() })
            .where(eq(t.id, id))
            .returning();
          await writeAudit(tx, actor, {
            tenantId: id,
            action: "tenant.update",
            targetType: "tenant",
            targetId: id,
            summary: { before: pick(before, patch), after: pick(row!, patch) },
          });
          return row!;
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw conflict(`a tenant with slug "${patch.slug}" already exists`, { field: "slug" });
        throw e;
      }
    },

    async remove(actor: Actor, id: string) {
      requirePlatform(actor, "tenants:write");
      await db.transaction(async (tx) => {
        const [row] = await tx.delete(t).where(eq(t.id, id)).returning();
        if (!row) throw notFound("tenant");
        await writeAudit(tx, actor, {
          tenantId: id,
          action: "tenant.delete",
          targetType: "tenant",
          targetId: id,
          summary: { name: row.name, slug: row.slug },
        });
      });
    },
  };
}

function pick(row: Record<string, unknown>, keys: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(keys).map((k) => [k, row[k]]));
}
