import { notFound } from "@vpnpanel/common";
import { type DbOrTx, schema } from "@vpnpanel/db";
import { and, eq, sql } from "drizzle-orm";
import { type Actor, requireTenantPermission } from "../rbac/actor";
import type { Permission } from "../rbac/permissions";
import { visibleTenantsSql } from "../shared/tenant-scope";

export type NodeRow = typeof schema.nodes.$inferSelect;

/**
 * Loads a node the actor may act on with `permission`: a node of a tenant the actor cannot see is
 * not found (404); a member without the permission gets 403. `forUpdate` locks the row.
 */
export async function loadNodeFor(
  db: DbOrTx,
  actor: Actor,
  nodeId: string,
  permission: Permission,
  opts: { forUpdate?: boolean } = {},
): Promise<NodeRow> {
  const n = schema.nodes;
  const q = db
    .select()
    .from(n)
    .where(and(eq(n.id, nodeId), visibleTenantsSql(actor, sql`${n.tenantId}`)))
    .limit(1);
  const [row] = opts.forUpdate ? await q.for("update") : await q;
  if (!row) throw notFound("node");
  requireTenantPermission(actor, row.tenantId, permission);
  return row;
}
