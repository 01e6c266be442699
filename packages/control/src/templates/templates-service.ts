import { AppError, type Clock } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import {
  DEFAULT_CLASH_TEMPLATE,
  DEFAULT_SINGBOX_TEMPLATE,
  type FieldError,
  validateClashTemplate,
  validateRemarkTemplate,
  validateSingboxTemplate,
} from "@vpnpanel/render";
import { and, eq } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { type Actor, requireTenantPermission } from "../rbac/actor";

export const templateKinds = ["clash-meta", "sing-box", "remark"] as const;
export type TemplateKind = (typeof templateKinds)[number];

const DEFAULT_REMARK = "{NODE} {PROTOCOL} · {DATA_LEFT} left · {DAYS_LEFT}d";

export const defaultTemplates: Record<TemplateKind, string> = {
  "clash-meta": DEFAULT_CLASH_TEMPLATE,
  "sing-box": DEFAULT_SINGBOX_TEMPLATE,
  remark: DEFAULT_REMARK,
};

const validators: Record<TemplateKind, (body: string) => FieldError[]> = {
  "clash-meta": validateClashTemplate,
  "sing-box": validateSingboxTemplate,
  remark: (body) => validateRemarkTemplate(body, "body"),
};

/** Called after a template changes, so rendered subscriptions of the tenant are re-rendered. */
export type TemplateChanged = (tenantId: string) => Promise<void>;

export function createTemplatesService(db: Db, clock: Clock, onChange: TemplateChanged = async () => {}) {
  const t = schema.configTemplates;

  async function read(tenantId: string, kind: TemplateKind) {
    const [row] = await db
      .select()
      .from(t)
      .where(and(eq(t.tenantId, tenantId), eq(t.kind, kind)))
      .limit(1);
    return row ?? null;
  }

  return {
    /** The tenant's template or the built-in default; `custom` says which. */
    async get(actor: Actor, tenantId: string, kind: TemplateKind) {
      requireTenantPermission(actor, tenantId, "templates:read");
      const row = await read(tenantId, kind);
      return {
        tenant_id: tenantId,
        kind,
        body: row?.body ?? defaultTemplates[kind],
        custom: row !== null,
        updated_at: row?.updatedAt.toISOString() ?? null,
      };
    },

    /** For renderers: the tenant's templates, without authorization (the caller already resolved the tenant). */
    async effective(tenantId: string): Promise<Partial<Record<TemplateKind, string>>> {
      const rows = await db.select().from(t).where(eq(t.tenantId, tenantId));
      return Object.fromEntries(rows.map((r) => [r.kind, r.body]));
    },

    /** Saves a template after validating it; errors name the offending place inside the document. */
    async put(actor: Actor, tenantId: string, kind: TemplateKind, body: string) {
      requireTenantPermission(actor, tenantId, "templates:write");
      const problems = validators[kind](body);
      if (problems.length > 0) {
        const first = problems[0]!;
        throw new AppError("validation_failed", `template is invalid: ${first.field}: ${first.message}`, {
          field: "body",
          problems,
        });
      }
      await db.transaction(async (tx) => {
        await tx
          .insert(t)
          .values({ tenantId, kind, body, updatedAt: clock.now(), updatedBy: actor.id })
          .onConflictDoUpdate({
            target: [t.tenantId, t.kind],
            set: { body, updatedAt: clock.now(), updatedBy: actor.id },
          });
        await writeAudit(tx, actor, {
          tenantId,
          action: "template.put",
          targetType: "template",
          targetId: `${tenantId}/${kind}`,
          summary: { kind, bytes: body.length },
        });
      });
      await onChange(tenantId);
      return this.get(actor, tenantId, kind);
    },

    /** Removes the tenant's template; the built-in default applies again. */
    async reset(actor: Actor, tenantId: string, kind: TemplateKind) {
      requireTenantPermission(actor, tenantId, "templates:write");
      await db.transaction(async (tx) => {
        await tx.delete(t).where(and(eq(t.tenantId, tenantId), eq(t.kind, kind)));
        await writeAudit(tx, actor, {
          tenantId,
          action: "template.reset",
          targetType: "template",
          targetId: `${tenantId}/${kind}`,
          summary: { kind },
        });
      });
      await onChange(tenantId);
    },
  };
}

export type TemplatesService = ReturnType<typeof createTemplatesService>;
