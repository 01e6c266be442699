import { AppError, forbidden } from "@vpnpanel/common";
import { type Permission, type PlatformPermission, type Role, roleHas } from "./permissions";

/** Who is acting: resolved once per request from the access token and the current database state. */
export interface Actor {
  kind: "admin" | "system";
  id: string;
  email?: string;
  isPlatformOwner: boolean;
  /** tenant id → role */
  memberships: ReadonlyMap<string, Role>;
  sessionId?: string;
  requestId?: string;
  sourceIp?: string;
}

export const systemActor = (requestId?: string): Actor => ({
  kind: "system",
  id: "system",
  isPlatformOwner: true,
  memberships: new Map(),
  ...(requestId ? { requestId } : {}),
});

/**
 * The tenants in which the actor holds `permission`: `"all"` for platform owners, else a list.
 * Data-layer queries take this scope, so another tenant's object simply is not found (404).
 */
export type TenantScope = "all" | readonly string[];

export function scopeFor(actor: Actor, permission: Permission): TenantScope {
  if (actor.isPlatformOwner) return "all";
  const out: string[] = [];
  for (const [tenantId, role] of actor.memberships) if (roleHas(role, permission)) out.push(tenantId);
  return out;
}

export function inScope(scope: TenantScope, tenantId: string): boolean {
  return scope === "all" || scope.includes(tenantId);
}

/** True when the actor can see the tenant at all (any role), used to pick 404 over 403. */
export function canSeeTenant(actor: Actor, tenantId: string): boolean {
  return actor.isPlatformOwner || actor.memberships.has(tenantId);
}

/**
 * Authorizes an action on one tenant: unknown/foreign tenant → 404 (its existence is not revealed),
 * member without the permission → 403.
 */
export function requireTenantPermission(actor: Actor, tenantId: string, permission: Permission): void {
  if (!canSeeTenant(actor, tenantId)) throw new AppError("not_found", "tenant not found");
  if (!inScope(scopeFor(actor, permission), tenantId)) {
    throw forbidden(`missing permission ${permission} in this tenant`);
  }
}

export function requirePlatform(actor: Actor, _permission: PlatformPermission): void {
  if (!actor.isPlatformOwner) throw forbidden("only a platform owner can do this");
}

/** Picks the tenant for a tenant-scoped collection request: explicit, or the actor's only one. */
export function resolveTenant(actor: Actor, explicit: string | undefined): string {
  if (explicit) return explicit;
  if (actor.memberships.size === 1) return [...actor.memberships.keys()][0]!;
  throw new AppError(
    "validation_failed",
    "tenant_id is required (send the X-Tenant-Id header or the tenant_id query parameter)",
    { field: "tenant_id" },
  );
}
