import { type SQL, sql } from "drizzle-orm";
import type { Actor } from "../rbac/actor";

/**
 * The tenants whose objects the actor can see at all (any role): a lookup by id filters on this, so
 * another tenant's object is simply not found (404); the permission check on the found object's tenant
 * then answers 403 for a member without the permission.
 */
export function visibleTenantsSql(actor: Actor, column: SQL): SQL {
  if (actor.isPlatformOwner) return sql`true`;
  const ids = [...actor.memberships.keys()];
  if (ids.length === 0) return sql`false`;
  return sql`${column} = ANY(${sql.param(ids)}::text[])`;
}
