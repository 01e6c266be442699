import { AppError } from "@vpnpanel/common";
import { type ControlPlane, listAudit, requireTenantPermission, scopeFor } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Page, PageQuery, TenantQuery, Timestamp, tenantHint } from "../../schemas";

const AuditRow = Type.Object({
  id: Type.String(),
  at: Type.String(),
  actor_type: Type.String(),
  actor_id: Type.Union([Type.String(), Type.Null()]),
  tenant_id: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  target_type: Type.Union([Type.String(), Type.Null()]),
  target_id: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  source_ip: Type.Union([Type.String(), Type.Null()]),
  summary: Type.Unknown(),
});

export function auditRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/audit",
    {
      config: tenantRoute("audit:read"),
      schema: {
        tags: ["audit"],
        summary: "The append-only audit log (owners and auditors), newest first",
        querystring: Type.Object({
          ...PageQuery,
          ...TenantQuery,
          actor_id: Type.Optional(Type.String({ maxLength: 64 })),
          action: Type.Optional(Type.String({ maxLength: 64 })),
          target_id: Type.Optional(Type.String({ maxLength: 64 })),
          since: Type.Optional(Timestamp),
          until: Type.Optional(Timestamp),
        }),
        response: { 200: Page(AuditRow), ...errorResponses },
      },
    },
    async (req) => {
      const actor = requireActor(req);
      const q = req.query as Record<string, string | number | undefined>;
      const tenantId = tenantHint(req);
      if (tenantId) requireTenantPermission(actor, tenantId, "audit:read");
      const scope = scopeFor(actor, "audit:read");
      if (scope !== "all" && scope.length === 0) {
        throw new AppError("forbidden", "missing permission audit:read");
      }
      const r = await listAudit(cp.database.db, scope, {
        limit: (q.limit as number | undefined) ?? 50,
        ...(tenantId ? { tenantId } : {}),
        ...(q.cursor ? { cursor: String(q.cursor) } : {}),
        ...(q.actor_id ? { actorId: String(q.actor_id) } : {}),
        ...(q.action ? { action: String(q.action) } : {}),
        ...(q.target_id ? { targetId: String(q.target_id) } : {}),
        ...(q.since ? { since: new Date(String(q.since)) } : {}),
        ...(q.until ? { until: new Date(String(q.until)) } : {}),
      });
      return {
        items: r.items.map((a) => ({
          id: a.id,
          at: a.at.toISOString(),
          actor_type: a.actorType,
          actor_id: a.actorId,
          tenant_id: a.tenantId,
          action: a.action,
          target_type: a.targetType,
          target_id: a.targetId,
          request_id: a.requestId,
          source_ip: a.sourceIp,
          summary: a.summary,
        })),
        next_cursor: r.nextCursor,
      };
    },
  );
}
