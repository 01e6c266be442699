import { type ControlPlane, type Role, roles } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { signedIn, tenantRoute } from "../../plugins/route-auth";
import { Email, errorResponses, Id, IdParams, Nullable, Page, PageQuery, Password } from "../../schemas";

const RoleSchema = Type.Union(roles.map((r) => Type.Literal(r)));
const Admin = Type.Object({
  id: Type.String(),
  email: Type.String(),
  display_name: Nullable(Type.String()),
  status: Type.String(),
  is_platform_owner: Type.Boolean(),
  last_login_at: Nullable(Type.String()),
  created_at: Type.String(),
  memberships: Type.Array(Type.Object({ tenant_id: Type.String(), role: Type.String() })),
});
const Membership = Type.Object({
  tenant_id: Type.String(),
  admin_id: Type.String(),
  email: Type.Optional(Type.String()),
  role: Type.String(),
  created_at: Type.Optional(Type.String()),
  created: Type.Optional(Type.Boolean()),
});
const MembershipParams = Type.Object({ id: Id("tnt"), adminId: Id("adm") });

export function adminRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/admins",
    {
      config: signedIn,
      schema: {
        tags: ["admins"],
        summary: "Panel accounts visible to the caller",
        querystring: Type.Object(PageQuery),
        response: { 200: Page(Admin), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string };
      const r = await cp.admins.list(requireActor(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: r.items, next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/admins",
    {
      config: { auth: { kind: "platform-or-tenant", permission: "memberships:write" } },
      schema: {
        tags: ["admins"],
        summary: "Create a panel account (platform owner; or a tenant owner, into their tenant with a role)",
        body: Type.Object(
          {
            email: Email,
            password: Password,
            display_name: Type.Optional(Type.String({ maxLength: 120 })),
            is_platform_owner: Type.Optional(Type.Boolean()),
            tenant_id: Type.Optional(Id("tnt")),
            role: Type.Optional(RoleSchema),
          },
          { additionalProperties: false },
        ),
        response: { 201: Admin, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as {
        email: string;
        password: string;
        display_name?: string;
        is_platform_owner?: boolean;
        tenant_id?: string;
        role?: Role;
      };
      const created = await cp.admins.create(requireActor(req), {
        email: b.email,
        password: b.password,
        ...(b.display_name !== undefined ? { displayName: b.display_name } : {}),
        ...(b.is_platform_owner !== undefined ? { isPlatformOwner: b.is_platform_owner } : {}),
        ...(b.tenant_id ? { tenantId: b.tenant_id } : {}),
        ...(b.role ? { role: b.role } : {}),
      });
      return reply.status(201).send(created);
    },
  );

  app.get(
    "/admins/:id",
    {
      config: signedIn,
      schema: { tags: ["admins"], params: IdParams("adm"), response: { 200: Admin, ...errorResponses } },
    },
    async (req) => cp.admins.get(requireActor(req), (req.params as { id: string }).id),
  );

  app.patch(
    "/admins/:id",
    {
      config: signedIn,
      schema: {
        tags: ["admins"],
        summary:
          "Change display name or password (self), or status (platform owner). Revokes sessions when needed",
        params: IdParams("adm"),
        body: Type.Object(
          {
            display_name: Type.Optional(Type.String({ maxLength: 120 })),
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("disabled")])),
            password: Type.Optional(Password),
            current_password: Type.Optional(Password),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Admin, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as {
        display_name?: string;
        status?: "active" | "disabled";
        password?: string;
        current_password?: string;
      };
      return cp.admins.update(requireActor(req), (req.params as { id: string }).id, {
        ...(b.display_name !== undefined ? { displayName: b.display_name } : {}),
        ...(b.status !== undefined ? { status: b.status } : {}),
        ...(b.password !== undefined ? { password: b.password } : {}),
        ...(b.current_password !== undefined ? { currentPassword: b.current_password } : {}),
      });
    },
  );

  app.get(
    "/tenants/:id/memberships",
    {
      config: tenantRoute("memberships:read"),
      schema: {
        tags: ["memberships"],
        params: IdParams("tnt"),
        response: { 200: Type.Object({ items: Type.Array(Membership) }), ...errorResponses },
      },
    },
    async (req) => ({
      items: await cp.admins.listMemberships(requireActor(req), (req.params as { id: string }).id),
    }),
  );

  app.post(
    "/tenants/:id/memberships",
    {
      config: tenantRoute("memberships:write"),
      schema: {
        tags: ["memberships"],
        summary: "Grant an account a role in the tenant (or change its role)",
        params: IdParams("tnt"),
        body: Type.Object({ admin_id: Id("adm"), role: RoleSchema }, { additionalProperties: false }),
        response: { 200: Membership, 201: Membership, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as { admin_id: string; role: Role };
      const r = await cp.admins.putMembership(
        requireActor(req),
        (req.params as { id: string }).id,
        b.admin_id,
        b.role,
      );
      return reply.status(r.created ? 201 : 200).send(r);
    },
  );

  app.delete(
    "/tenants/:id/memberships/:adminId",
    {
      config: tenantRoute("memberships:write"),
      schema: {
        tags: ["memberships"],
        params: MembershipParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const p = req.params as { id: string; adminId: string };
      await cp.admins.deleteMembership(requireActor(req), p.id, p.adminId);
      return reply.status(204).send();
    },
  );
}
