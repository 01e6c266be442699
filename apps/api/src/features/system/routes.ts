import type { Registry } from "@vpnpanel/common";
import { type ControlPlane, platformPermissions, rolePermissions, roles } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { publicRoute, signedIn } from "../../plugins/route-auth";

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export function systemRoutes(
  app: FastifyInstance,
  cp: ControlPlane,
  registry: Registry,
  checks: ReadinessCheck[],
) {
  app.get(
    "/health",
    { config: publicRoute, schema: { tags: ["system"], summary: "Liveness: the process is up" } },
    async () => ({ status: "ok" }),
  );

  app.get(
    "/ready",
    { config: publicRoute, schema: { tags: ["system"], summary: "Readiness: database and Redis reachable" } },
    async (_req, reply) => {
      const results: Record<string, string> = {};
      let ok = true;
      for (const c of checks) {
        try {
          await Promise.race([
            c.check(),
            new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 2000).unref()),
          ]);
          results[c.name] = "ok";
        } catch {
          ok = false;
          results[c.name] = "unavailable";
        }
      }
      return reply.status(ok ? 200 : 503).send({ status: ok ? "ok" : "unavailable", checks: results });
    },
  );

  app.get(
    "/metrics",
    { config: publicRoute, schema: { tags: ["system"], summary: "Prometheus metrics", hide: true } },
    async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );

  app.get("/openapi.json", { config: publicRoute, schema: { hide: true } }, async () => app.swagger());

  app.get(
    "/roles",
    {
      config: signedIn,
      schema: {
        tags: ["auth"],
        summary: "Roles and the permissions each one grants",
        response: {
          200: Type.Object({
            roles: Type.Array(Type.Object({ role: Type.String(), permissions: Type.Array(Type.String()) })),
            platform_owner: Type.Array(Type.String()),
          }),
        },
      },
    },
    async () => ({
      roles: roles.map((role) => ({ role, permissions: [...rolePermissions[role]] })),
      platform_owner: [...platformPermissions],
    }),
  );
  void cp;
}
