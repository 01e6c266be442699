import type { ControlPlane } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { platformRoute, signedIn, tenantRoute } from "../../plugins/route-auth";
import { errorResponses, IdParams, Page, PageQuery } from "../../schemas";

const Slug = Type.String({ pattern: "^[a-z0-9][a-z0-9-]{1,62}$" });
const Settings = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 100 });
const Tenant = Type.Object({
  id: Type.String(),
  name: Type.String(),
  slug: Type.String(),
  status: Type.String(),
  settings: Type.Unknown(),
  created_at: Type.String(),
  updated_at: Type.String(),
});

type Row = {
  id: string;
  name: string;
  slug: string;
  status: string;
  settings: unknown;
  createdAt: Date;
  updatedAt: Date;
};
const view = (t: Row) => ({
  id: t.id,
  name: t.name,
  slug: t.slug,
  status: t.status,
  settings: t.settings,
  created_at: t.createdAt.toISOString(),
  updated_at: t.updatedAt.toISOString(),
});

export function tenantRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/tenants",
    {
      config: signedIn,
      schema: {
        tags: ["tenants"],
        summary: "Tenants visible to the caller (all of them for a platform owner)",
        querystring: Type.Object(PageQuery),
        response: { 200: Page(Tenant), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string };
      const r = await cp.tenants.list(requireActor(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: r.items.map(view), next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/tenants",
    {
      config: platformRoute("tenants:write"),
      schema: {
        tags: ["tenants"],
        summary: "Create a tenant (platform owner)",
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 120 }),
            slug: Slug,
            settings: Type.Optional(Settings),
          },
          { additionalProperties: false },
        ),
        response: { 201: Tenant, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; slug: string; settings?: Record<string, unknown> };
      return reply.status(201).send(view(await cp.tenants.create(requireActor(req), b)));
    },
  );

  app.get(
    "/tenants/:id",
    {
      config: tenantRoute("tenant:read"),
      schema: { tags: ["tenants"], params: IdParams("tnt"), response: { 200: Tenant, ...errorResponses } },
    },
    async (req) => view(await cp.tenants.get(requireActor(req), (req.params as { id: string }).id)),
  );

  app.patch(
    "/tenants/:id",
    {
      config: tenantRoute("tenant:settings"),
      schema: {
        tags: ["tenants"],
        summary: "Update settings (owner); name, slug and status need a platform owner",
        params: IdParams("tnt"),
        body: Type.Object(
          {
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 120 })),
            slug: Type.Optional(Slug),
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("suspended")])),
            settings: Type.Optional(Settings),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Tenant, ...errorResponses },
      },
    },
    async (req) =>
      view(await cp.tenants.update(requireActor(req), (req.params as { id: string }).id, req.body as never)),
  );

  app.delete(
    "/tenants/:id",
    {
      config: platformRoute("tenants:write"),
      schema: {
        tags: ["tenants"],
        params: IdParams("tnt"),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      await cp.tenants.remove(requireActor(req), (req.params as { id: string }).id);
      return reply.status(204).send();
    },
  );
}
