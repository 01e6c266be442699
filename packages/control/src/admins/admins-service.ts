import { AppError, conflict, forbidden, newId, notFound } from "@vpnpanel/common";
import { type Db, type DbOrTx, schema } from "@vpnpanel/db";
import { and, asc, eq, gt, inArray, or, type SQL, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import type { PasswordHasher } from "../auth/passwords";
import { passwordProblem } from "../auth/passwords";
import { type Actor, requireTenantPermission, scopeFor } from "../rbac/actor";
import type { Role } from "../rbac/permissions";
import { isUniqueViolation } from "../shared/db-errors";
import { decodeCursor, keysetPage } from "../shared/pagination";

export interface CreateAdminInput {
  email: string;
  password: string;
  displayName?: string;
  isPlatformOwner?: boolean;
  /** A tenant owner creates accounts into their tenant with a role. */
  tenantId?: string;
  role?: Role;
}

type AdminRow = typeof schema.admins.$inferSelect;

/** The public view of an account: never the hash. */
export function publicAdmin(a: AdminRow, memberships: Array<{ tenantId: string; role: Role }> = []) {
  return {
    id: a.id,
    email: a.email,
    display_name: a.displayName,
    status: a.status,
    is_platform_owner: a.isPlatformOwner,
    last_login_at: a.lastLoginAt?.toISOString() ?? null,
    created_at: a.createdAt.toISOString(),
    memberships: memberships.map((m) => ({ tenant_id: m.tenantId, role: m.role })),
  };
}

function checkPassword(password: string) {
  const problem = passwordProblem(password);
  if (problem) throw new AppError("validation_failed", problem, { field: "password" });
}

async function bumpTokenVersion(tx: DbOrTx, adminId: string) {
  await tx
    .update(schema.admins)
    .set({ tokenVersion: sql`${schema.admins.tokenVersion} + 1`, updatedAt: new Date() })
    .where(eq(schema.admins.id, adminId));
}

export function createAdminsService(db: Db, hasher: PasswordHasher) {
  const a = schema.admins;
  const m = schema.memberships;

  async function membershipsOf(ids: string[]) {
    if (ids.length === 0) return new Map<string, Array<{ tenantId: string; role: Role }>>();
    const rows = await db.select().from(m).where(inArray(m.adminId, ids));
    const out = new Map<string, Array<{ tenantId: string; role: Role }>>();
    for (const r of rows)
      out.set(r.adminId, [...(out.get(r.adminId) ?? []), { tenantId: r.tenantId, role: r.role }]);
    return out;
  }

  /** Admins visible to the actor: everyone for a platform owner, else members of tenants they can read. */
  function visibleWhere(actor: Actor): SQL | undefined {
    if (actor.isPlatformOwner) return undefined;
    const scope = scopeFor(actor, "memberships:read");
    const tenants = scope === "all" ? [] : [...scope];
    if (tenants.length === 0) return eq(a.id, actor.id);
    return or(
      eq(a.id, actor.id),
      inArray(a.id, db.select({ id: m.adminId }).from(m).where(inArray(m.tenantId, tenants))),
    );
  }

  return {
    /** Creates an account. Used by the CLI (system actor) and the API. */
    async create(actor: Actor, input: CreateAdminInput) {
      checkPassword(input.password);
      if (input.isPlatformOwner && !actor.isPlatformOwner)
        throw forbidden("only a platform owner can create one");
      if (!actor.isPlatformOwner) {
        if (!input.tenantId || !input.role) {
          throw new AppError("validation_failed", "tenant_id and role are required", { field: "tenant_id" });
        }
        requireTenantPermission(actor, input.tenantId, "memberships:write");
      }
      const passwordHash = await hasher.hash(input.password);
      try {
        return await db.transaction(async (tx) => {
          const [row] = await tx
            .insert(a)
            .values({
              id: newId("adm"),
              email: input.email.trim(),
              displayName: input.displayName ?? null,
              passwordHash,
              isPlatformOwner: input.isPlatformOwner ?? false,
            })
            .returning();
          const memberships: Array<{ tenantId: string; role: Role }> = [];
          if (input.tenantId && input.role) {
            await tx.insert(m).values({ tenantId: input.tenantId, adminId: row!.id, role: input.role });
            memberships.push({ tenantId: input.tenantId, role: input.role });
          }
          await writeAudit(tx, actor, {
            tenantId: input.tenantId ?? null,
            action: "admin.create",
            targetType: "admin",
            targetId: row!.id,
            summary: { email: row!.email, platform_owner: row!.isPlatformOwner, role: input.role ?? null },
          });
          return publicAdmin(row!, memberships);
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw conflict("an account with this email already exists", { field: "email" });
        throw e;
      }
    },

    async list(actor: Actor, page: { limit: number; cursor?: string }) {
      const where: Array<SQL | undefined> = [visibleWhere(actor)];
      if (page.cursor) where.push(gt(a.id, decodeCursor(page.cursor, "admins")));
      const rows = await db
        .select()
        .from(a)
        .where(and(...where))
        .orderBy(asc(a.id))
        .limit(page.limit + 1);
      const { items, nextCursor } = keysetPage(rows, page.limit, "admins", (r) => r.id);
      const ms = await membershipsOf(items.map((r) => r.id));
      return { items: items.map((r) => publicAdmin(r, ms.get(r.id))), nextCursor };
    },

    async get(actor: Actor, id: string) {
      const [row] = await db
        .select()
        .from(a)
        .where(and(eq(a.id, id), visibleWhere(actor)))
        .limit(1);
      if (!row) throw notFound("admin");
      return publicAdmin(row, (await membershipsOf([id])).get(id));
    },

    /**
     * Updates an account. Self: display name and password (with the current password). Platform owner:
     * also status and platform ownership. Disabling or a password change revokes every session.
     */
    async update(
      actor: Actor,
      id: string,
      patch: {
        displayName?: string;
        status?: "active" | "disabled";
        password?: string;
        currentPassword?: string;
      },
    ) {
      const self = actor.id === id;
      if (!actor.isPlatformOwner) {
        if (!self) {
          // Not found rather than forbidden unless the account is visible to the actor.
          await this.get(actor, id);
          throw forbidden("only a platform owner can change another account");
        }
        if (patch.status !== undefined) throw forbidden("you cannot change your own status");
      }
      if (patch.password !== undefined) checkPassword(patch.password);
      const [current] = await db.select().from(a).where(eq(a.id, id)).limit(1);
      if (!current) throw notFound("admin");
      if (self && patch.password !== undefined && !actor.isPlatformOwner) {
        if (!patch.currentPassword || !(await hasher.verify(current.passwordHash, patch.currentPassword))) {
          throw new AppError("validation_failed", "current_password is wrong", { field: "current_password" });
        }
      }
      const passwordHash = patch.password !== undefined ? await hasher.hash(patch.password) : undefined;
      const updated = await db.transaction(async (tx) => {
        const [row] = await tx
          .update(a)
          .set({
            ...(patch.displayName !== undefined ? { displayName: patch.displayName } : {}),
            ...(patch.status !== undefined ? { status: patch.status } : {}),
            ...(passwordHash ? { passwordHash } : {}),
            updatedAt: new Date(),
          })
          .where(eq(a.id, id))
          .returning();
        const revokes =
          passwordHash !== undefined || (patch.status === "disabled" && current.status !== "disabled");
        if (revokes) await bumpTokenVersion(tx, id);
        await writeAudit(tx, actor, {
          action: "admin.update",
          targetType: "admin",
          targetId: id,
          summary: {
            ...(patch.displayName !== undefined ? { display_name: patch.displayName } : {}),
            ...(patch.status !== undefined
              ? { status: { before: current.status, after: patch.status } }
              : {}),
            ...(passwordHash ? { password_changed: true } : {}),
            sessions_revoked: revokes,
          },
        });
        return row!;
      });
      return publicAdmin(updated, (await membershipsOf([id])).get(id));
    },

    /** Sets a new password without the old one (CLI recovery); revokes every session. */
    async resetPassword(actor: Actor, email: string, password: string) {
      checkPassword(password);
      const passwordHash = await hasher.hash(password);
      return db.transaction(async (tx) => {
        const [row] = await tx
          .update(a)
          .set({
            passwordHash,
            status: "active",
            tokenVersion: sql`${a.tokenVersion} + 1`,
            updatedAt: new Date(),
          })
          .where(sql`lower(${a.email}) = ${email.trim().toLowerCase()}`)
          .returning();
        if (!row) throw notFound("admin");
        await writeAudit(tx, actor, {
          action: "admin.reset_password",
          targetType: "admin",
          targetId: row.id,
        });
        return publicAdmin(row);
      });
    },

    async listMemberships(actor: Actor, tenantId: string) {
      requireTenantPermission(actor, tenantId, "memberships:read");
      const rows = await db
        .select({ adminId: m.adminId, role: m.role, createdAt: m.createdAt, email: a.email })
        .from(m)
        .innerJoin(a, eq(a.id, m.adminId))
        .where(eq(m.tenantId, tenantId))
        .orderBy(asc(m.adminId));
      return rows.map((r) => ({
        tenant_id: tenantId,
        admin_id: r.adminId,
        email: r.email,
        role: r.role,
        created_at: r.createdAt.toISOString(),
      }));
    },

    /** Grants or changes a role. A role change revokes the account's sessions (claims must be re-read). */
    async putMembership(actor: Actor, tenantId: string, adminId: string, role: Role) {
      requireTenantPermission(actor, tenantId, "memberships:write");
      if (role === "owner" && !actor.isPlatformOwner && actor.memberships.get(tenantId) !== "owner") {
        throw forbidden("only an owner can grant the owner role");
      }
      return db.transaction(async (tx) => {
        const [target] = await tx.select({ id: a.id }).from(a).where(eq(a.id, adminId)).limit(1);
        if (!target) throw notFound("admin");
        const [before] = await tx
          .select()
          .from(m)
          .where(and(eq(m.tenantId, tenantId), eq(m.adminId, adminId)))
          .for("update");
        await tx
          .insert(m)
          .values({ tenantId, adminId, role })
          .onConflictDoUpdate({ target: [m.tenantId, m.adminId], set: { role } });
        if (before && before.role !== role) await bumpTokenVersion(tx, adminId);
        await writeAudit(tx, actor, {
          tenantId,
          action: before ? "membership.update" : "membership.create",
          targetType: "admin",
          targetId: adminId,
          summary: { role: { before: before?.role ?? null, after: role } },
        });
        return { tenant_id: tenantId, admin_id: adminId, role, created: !before };
      });
    },

    async deleteMembership(actor: Actor, tenantId: string, adminId: string) {
      requireTenantPermission(actor, tenantId, "memberships:write");
      if (adminId === actor.id && !actor.isPlatformOwner)
        throw forbidden("you cannot remove your own membership");
      await db.transaction(async (tx) => {
        const [row] = await tx
          .delete(m)
          .where(and(eq(m.tenantId, tenantId), eq(m.adminId, adminId)))
          .returning();
        if (!row) throw notFound("membership");
        await bumpTokenVersion(tx, adminId);
        await writeAudit(tx, actor, {
          tenantId,
          action: "membership.delete",
          targetType: "admin",
          targetId: adminId,
          summary: { role: row.role },
        });
      });
    },
  };
}

export type AdminsService = ReturnType<typeof createAdminsService>;
