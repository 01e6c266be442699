import { type ControlPlane, type TemplateKind, templateKinds } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, Nullable } from "../../schemas";

const Params = Type.Object({
  id: Id("tnt"),
  kind: Type.Union(templateKinds.map((k) => Type.Literal(k))),
});
const Template = Type.Object({
  tenant_id: Type.String(),
  kind: Type.String(),
  body: Type.String(),
  custom: Type.Boolean(),
  updated_at: Nullable(Type.String()),
});

export function templateRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/tenants/:id/templates/:kind",
    {
      config: tenantRoute("templates:read"),
      schema: {
        tags: ["templates"],
        summary: "The tenant's Clash-Meta / sing-box / remark template (or the built-in default)",
        params: Params,
        response: { 200: Template, ...errorResponses },
      },
    },
    async (req) => {
      const p = req.params as { id: string; kind: TemplateKind };
      return cp.templates.get(requireActor(req), p.id, p.kind);
    },
  );

  app.put(
    "/tenants/:id/templates/:kind",
    {
      config: tenantRoute("templates:write"),
      schema: {
        tags: ["templates"],
        summary:
          "Save a template. Clash-Meta: YAML whose proxy groups list {{PROXIES}} where the subscriber's proxies go; sing-box: JSON likewise; remark: a name template with {USERNAME}, {DATA_LEFT}, {DAYS_LEFT}, …",
        params: Params,
        body: Type.Object(
          { body: Type.String({ minLength: 1, maxLength: 262_144 }) },
          { additionalProperties: false },
        ),
        response: { 200: Template, ...errorResponses },
      },
    },
    async (req) => {
      const p = req.params as { id: string; kind: TemplateKind };
      return cp.templates.put(requireActor(req), p.id, p.kind, (req.body as { body: string }).body);
    },
  );

  app.delete(
    "/tenants/:id/templates/:kind",
    {
      config: tenantRoute("templates:write"),
      schema: {
        tags: ["templates"],
        summary: "Back to the built-in default",
        params: Params,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const p = req.params as { id: string; kind: TemplateKind };
      await cp.templates.reset(requireActor(req), p.id, p.kind);
      return reply.status(204).send();
    },
  );
}
