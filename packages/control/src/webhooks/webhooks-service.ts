import { AppError, type Clock, newId, notFound, type SecretBox } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { and, asc, desc, eq, gt, lt } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { outboxTopics } from "../outbox/outbox";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { decodeCursor, keysetPage } from "../shared/pagination";
import { visibleTenantsSql } from "../shared/tenant-scope";
import { newWebhookSecret } from "./signing";
import { checkUrlShape, type Resolver, resolveTarget, systemResolver, type UrlPolicy } from "./url-guard";

// Per-tenant webhook endpoints. The signing secret is returned once (at creation or rotation) and
// stored sealed under a context naming the endpoint.

export const WEBHOOK_EVENTS = outboxTopics;
export const webhookSecretContext = (endpointId: string) => `webhook_endpoints.secret:${endpointId}`;

type EndpointRow = typeof schema.webhookEndpoints.$inferSelect;
type DeliveryRow = typeof schema.webhookDeliveries.$inferSelect;

export function endpointView(e: EndpointRow) {
  return {
    id: e.id,
    tenant_id: e.tenantId,
    url: e.url,
    description: e.description,
    events: e.events,
    enabled: e.enabled,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}

export function deliveryView(d: DeliveryRow) {
  return {
    id: d.id,
    endpoint_id: d.endpointId,
    event_id: String(d.outboxId),
    event: d.topic,
    status: d.status,
    attempts: d.attempts,
    next_attempt_at: d.status === "pending" ? (d.nextAttemptAt?.toISOString() ?? null) : null,
    last_attempt_at: d.lastAttemptAt?.toISOString() ?? null,
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    last_duration_ms: d.lastDurationMs,
    delivered_at: d.deliveredAt?.toISOString() ?? null,
    created_at: d.createdAt.toISOString(),
  };
}

export interface EndpointInput {
  url: string;
  description?: string | null;
  events?: string[];
  enabled?: boolean;
}

function checkEvents(events: string[]) {
  const unknown = events.find((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e));
  if (unknown) {
    throw new AppError("validation_failed", `events: unknown event "${unknown}"`, { field: "events" });
  }
}

export function createWebhooksService(deps: {
  db: Db;
  box: SecretBox;
  clock: Clock;
  policy: UrlPolicy;
  resolver?: Resolver;
}) {
  const { db, box, clock, policy } = deps;
  const w = schema.webhookEndpoints;
  const d = schema.webhookDeliveries;

  async function checkUrl(raw: string) {
    await resolveTarget(checkUrlShape(raw, policy), policy, deps.resolver ?? systemResolver);
  }

  async function visible(actor: Actor, id: string, permission: "webhooks:read" | "webhooks:write") {
    const [row] = await db
      .select()
      .from(w)
      .where(and(eq(w.id, id), visibleTenantsSql(actor, w.tenantId as never)))
      .limit(1);
    if (!row) throw notFound("webhook");
    requireTenantPermission(actor, row.tenantId, permission);
    return row;
  }

  return {
    /** Creates an endpoint; the response carries the signing secret, shown this once. */
    async create(actor: Actor, tenantHint: string | undefined, input: EndpointInput) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "webhooks:write");
      checkEvents(input.events ?? []);
      await checkUrl(input.url);
      const id = newId("whk");
      const secret = newWebhookSecret();
      const now = clock.now();
      const row = await db.transaction(async (tx) => {
        const [row] = await tx
          .insert(w)
          .values({
            id,
            tenantId,
            url: input.url,
            description: input.description ?? null,
            events: [...new Set(input.events ?? [])],
            enabled: input.enabled ?? true,
            secretEnc: box.encrypt(secret, webhookSecretContext(id)),
            createdAt: now,
            updatedAt: now,
          })
          .returning();
        await writeAudit(tx, actor, {
          tenantId,
          action: "webhook.create",
          targetType: "webhook",
          targetId: id,
          summary: { url: input.url, events: row!.events, enabled: row!.enabled },
        });
        return row!;
      });
      return { ...endpointView(row), secret };
    },

    async list(actor: Actor, tenantHint: string | undefined, page: { limit: number; cursor?: string }) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "webhooks:read");
      const rows = await db
        .select()
        .from(w)
        .where(
          and(
            eq(w.tenantId, tenantId),
            page.cursor ? gt(w.id, decodeCursor(page.cursor, "webhooks")) : undefined,
          ),
        )
        .orderBy(asc(w.id))
        .limit(page.limit + 1);
      const { items, nextCursor } = keysetPage(rows, page.limit, "webhooks", (r) => r.id);
      return { items: items.map(endpointView), nextCursor };
    },

    async get(actor: Actor, id: string) {
      return endpointView(await visible(actor, id, "webhooks:read"));
    },

    /** Changes an endpoint; `rotateSecret` issues a new secret (returned once), the old one stops signing. */
    async update(actor: Actor, id: string, patch: Partial<EndpointInput> & { rotateSecret?: boolean }) {
      const current = await visible(actor, id, "webhooks:write");
      if (patch.events) checkEvents(patch.events);
      if (patch.url !== undefined && patch.url !== current.url) await checkUrl(patch.url);
      const secret = patch.rotateSecret ? newWebhookSecret() : null;
      const row = await db.transaction(async (tx) => {
        const [row] = await tx
          .update(w)
          .set({
            ...(patch.url !== undefined ? { url: patch.url } : {}),
            ...(patch.description !== undefined ? { description: patch.description } : {}),
            ...(patch.events !== undefined ? { events: [...new Set(patch.events)] } : {}),
            ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
            ...(secret ? { secretEnc: box.encrypt(secret, webhookSecretContext(id)) } : {}),
            updatedAt: clock.now(),
          })
          .where(eq(w.id, id))
          .returning();
        if (!row) throw notFound("webhook");
        await writeAudit(tx, actor, {
          tenantId: row.tenantId,
          action: "webhook.update",
          targetType: "webhook",
          targetId: id,
          summary: {
            ...(patch.url !== undefined ? { url: { before: current.url, after: row.url } } : {}),
            ...(patch.events !== undefined ? { events: { before: current.events, after: row.events } } : {}),
            ...(patch.enabled !== undefined
              ? { enabled: { before: current.enabled, after: row.enabled } }
              : {}),
            ...(patch.description !== undefined ? { description: true } : {}),
            ...(secret ? { secret_rotated: true } : {}),
          },
        });
        return row;
      });
      return { ...endpointView(row), ...(secret ? { secret } : {}) };
    },

    async remove(actor: Actor, id: string) {
      const current = await visible(actor, id, "webhooks:write");
      await db.transaction(async (tx) => {
        await tx.delete(w).where(eq(w.id, id));
        await writeAudit(tx, actor, {
          tenantId: current.tenantId,
          action: "webhook.delete",
          targetType: "webhook",
          targetId: id,
          summary: { url: current.url },
        });
      });
    },

    /** The delivery log of an endpoint, newest first. */
    async deliveries(
      actor: Actor,
      id: string,
      page: { limit: number; cursor?: string; status?: "pending" | "delivered" | "failed" },
    ) {
      await visible(actor, id, "webhooks:read");
      const rows = await db
        .select()
        .from(d)
        .where(
          and(
            eq(d.endpointId, id),
            page.status ? eq(d.status, page.status) : undefined,
            page.cursor ? lt(d.id, decodeCursor(page.cursor, "deliveries")) : undefined,
          ),
        )
        .orderBy(desc(d.id))
        .limit(page.limit + 1);
      const { items, nextCursor } = keysetPage(rows, page.limit, "deliveries", (r) => r.id);
      return { items: items.map(deliveryView), nextCursor };
    },
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
