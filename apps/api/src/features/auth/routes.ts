import type { ControlPlane } from "@vpnpanel/control";
import { rolePermissions } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { publicRoute, signedIn } from "../../plugins/route-auth";
import { Email, errorResponses, Password } from "../../schemas";

const Tokens = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal("Bearer"),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
  refresh_expires_at: Type.String(),
});

export function authRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.post(
    "/auth/login",
    {
      config: publicRoute,
      schema: {
        tags: ["auth"],
        summary: "Sign in with email and password",
        body: Type.Object({ email: Email, password: Password }, { additionalProperties: false }),
        response: { 200: Tokens, ...errorResponses },
      },
    },
    async (req) => {
      const body = req.body as { email: string; password: string };
      return cp.auth.login(body.email, body.password, {
        requestId: req.id,
        sourceIp: req.ip,
        ...(req.headers["user-agent"] ? { userAgent: req.headers["user-agent"] } : {}),
      });
    },
  );

  app.post(
    "/auth/refresh",
    {
      config: publicRoute,
      schema: {
        tags: ["auth"],
        summary: "Exchange a refresh token for a new pair (the old one stops working)",
        body: Type.Object(
          { refresh_token: Type.String({ minLength: 10, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 200: Tokens, ...errorResponses },
      },
    },
    async (req) =>
      cp.auth.refresh((req.body as { refresh_token: string }).refresh_token, {
        requestId: req.id,
        sourceIp: req.ip,
        ...(req.headers["user-agent"] ? { userAgent: req.headers["user-agent"] } : {}),
      }),
  );

  app.post(
    "/auth/logout",
    {
      config: signedIn,
      schema: { tags: ["auth"], summary: "End this session", response: { 204: Type.Null() } },
    },
    async (req, reply) => {
      await cp.auth.logout(requireActor(req));
      return reply.status(204).send();
    },
  );

  app.get(
    "/auth/me",
    { config: signedIn, schema: { tags: ["auth"], summary: "The signed-in account and its permissions" } },
    async (req) => {
      const actor = requireActor(req);
      const me = await cp.admins.get(actor, actor.id);
      return {
        ...me,
        tenants: [...actor.memberships].map(([tenant_id, role]) => ({
          tenant_id,
          role,
          permissions: rolePermissions[role],
        })),
      };
    },
  );

  app.get(
    "/.well-known/jwks.json",
    { config: publicRoute, schema: { tags: ["auth"], summary: "Public keys that verify access tokens" } },
    async () => cp.keys.jwks(),
  );
}
