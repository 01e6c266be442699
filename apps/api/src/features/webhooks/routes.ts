import { type ControlPlane, WEBHOOK_EVENTS } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, IdParams, Nullable, Page, PageQuery, TenantQuery, tenantHint } from "../../schemas";
import { OrNull } from "../users/schemas";

const Event = Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e)));
const Events = Type.Array(Event, { maxItems: WEBHOOK_EVENTS.length, uniqueItems: true });
const Url = Type.String({ minLength: 8, maxLength: 2048 });

const Endpoint = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  url: Type.String(),
  description: Nullable(Type.String()),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  created_at: Type.String(),
  updated_at: Type.String(),
  secret: Type.Optional(Type.String({ description: "shown once: at creation and on rotation" })),
});

const Delivery = Type.Object({
  id: Type.String(),
  endpoint_id: Type.String(),
  event_id: Type.String(),
  event: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  next_attempt_at: Nullable(Type.String()),
  last_attempt_at: Nullable(Type.String()),
  last_status_code: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  last_duration_ms: Nullable(Type.Integer()),
  delivered_at: Nullable(Type.String()),
  created_at: Type.String(),
});

const id = (req: { params: unknown }) => (req.params as { id: string }).id;

export function webhookRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/webhooks",
    {
      config: tenantRoute("webhooks:read"),
      schema: {
        tags: ["webhooks"],
        querystring: Type.Object({ ...PageQuery, ...TenantQuery }),
        response: { 200: Page(Endpoint), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string };
      const r = await cp.webhooks.list(requireActor(req), tenantHint(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: r.items, next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/webhooks",
    {
      config: tenantRoute("webhooks:write"),
      schema: {
        tags: ["webhooks"],
        summary:
          "Add an endpoint for user.* events (empty events = all). Bodies are signed: X-Vpnpanel-Signature: t=<unix>,v1=HMAC-SHA256(secret, t + '.' + body). The secret is returned once",
        querystring: Type.Object(TenantQuery),
        body: Type.Object(
          {
            url: Url,
            description: Type.Optional(OrNull(Type.String({ maxLength: 200 }))),
            events: Type.Optional(Events),
            enabled: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 201: Endpoint, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as {
        url: string;
        description?: string | null;
        events?: string[];
        enabled?: boolean;
      };
      return reply.status(201).send(await cp.webhooks.create(requireActor(req), tenantHint(req), b));
    },
  );

  app.get(
    "/webhooks/:id",
    {
      config: tenantRoute("webhooks:read"),
      schema: { tags: ["webhooks"], params: IdParams("whk"), response: { 200: Endpoint, ...errorResponses } },
    },
    async (req) => cp.webhooks.get(requireActor(req), id(req)),
  );

  app.patch(
    "/webhooks/:id",
    {
      config: tenantRoute("webhooks:write"),
      schema: {
        tags: ["webhooks"],
        summary: "Change an endpoint; rotate_secret issues a new signing secret (returned once)",
        params: IdParams("whk"),
        body: Type.Object(
          {
            url: Type.Optional(Url),
            description: Type.Optional(OrNull(Type.String({ maxLength: 200 }))),
            events: Type.Optional(Events),
            enabled: Type.Optional(Type.Boolean()),
            rotate_secret: Type.Optional(Type.Literal(true)),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Endpoint, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as {
        url?: string;
        description?: string | null;
        events?: string[];
        enabled?: boolean;
        rotate_secret?: true;
      };
      const { rotate_secret, ...rest } = b;
      return cp.webhooks.update(requireActor(req), id(req), {
        ...rest,
        ...(rotate_secret ? { rotateSecret: true } : {}),
      });
    },
  );

  app.delete(
    "/webhooks/:id",
    {
      config: tenantRoute("webhooks:write"),
      schema: {
        tags: ["webhooks"],
        params: IdParams("whk"),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      await cp.webhooks.remove(requireActor(req), id(req));
      return reply.status(204).send();
    },
  );

  app.get(
    "/webhooks/:id/deliveries",
    {
      config: tenantRoute("webhooks:read"),
      schema: {
        tags: ["webhooks"],
        summary: "The delivery log of an endpoint, newest first: attempts, last status, next retry",
        params: IdParams("whk"),
        querystring: Type.Object({
          ...PageQuery,
          status: Type.Optional(
            Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed")]),
          ),
        }),
        response: { 200: Page(Delivery), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string; status?: "pending" | "delivered" | "failed" };
      const r = await cp.webhooks.deliveries(requireActor(req), id(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.status ? { status: q.status } : {}),
      });
      return { items: r.items, next_cursor: r.nextCursor };
    },
  );
}
