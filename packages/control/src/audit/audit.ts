import { type DbOrTx, schema } from "@vpnpanel/db";
import { and, desc, eq, gte, inArray, lt, lte, type SQL, sql } from "drizzle-orm";
import type { Actor, TenantScope } from "../rbac/actor";
import { decodeCursor, encodeCursor } from "../shared/pagination";

export interface AuditEntry {
  tenantId?: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  /** Before/after summary; never secrets. */
  summary?: Record<string, unknown>;
}

/** Writes the audit row inside the caller's transaction, so the change and its record commit together. */
export async function writeAudit(tx: DbOrTx, actor: Actor, entry: AuditEntry): Promise<void> {
  await tx.insert(schema.auditLog).values({
    actorType: actor.kind === "system" ? "system" : "admin",
    actorId: actor.id,
    tenantId: entry.tenantId ?? null,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    requestId: actor.requestId ?? null,
    sourceIp: actor.sourceIp ?? null,
    summary: entry.summary ?? {},
  });
}

export interface AuditFilter {
  tenantId?: string;
  actorId?: string;
  action?: string;
  targetId?: string;
  since?: Date;
  until?: Date;
  limit: number;
  cursor?: string;
}

export async function listAudit(db: DbOrTx, scope: TenantScope, f: AuditFilter) {
  const a = schema.auditLog;
  const where: SQL[] = [];
  if (scope !== "all") where.push(scope.length ? inArray(a.tenantId, [...scope]) : sql`false`);
  if (f.tenantId) where.push(eq(a.tenantId, f.tenantId));
  if (f.actorId) where.push(eq(a.actorId, f.actorId));
  if (f.action) where.push(eq(a.action, f.action));
  if (f.targetId) where.push(eq(a.targetId, f.targetId));
  if (f.since) where.push(gte(a.at, f.since));
  if (f.until) where.push(lte(a.at, f.until));
  if (f.cursor) where.push(lt(a.id, BigInt(decodeCursor(f.cursor, "audit"))));
  const rows = await db
    .select()
    .from(a)
    .where(and(...where))
    .orderBy(desc(a.id))
    .limit(f.limit + 1);
  const page = rows.slice(0, f.limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({ ...r, id: r.id.toString() })),
    nextCursor: rows.length > f.limit && last ? encodeCursor("audit", last.id.toString()) : null,
  };
}
