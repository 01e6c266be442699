import { randomUUID } from "node:crypto";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { createMetricsRegistry, type Registry, VERSION } from "@vpnpanel/common";
import type { ControlPlane } from "@vpnpanel/control";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import { features } from "./features";
import { type ReadinessCheck, systemRoutes } from "./features/system/routes";
import { parseAllowList, registerAuthn } from "./plugins/authn";
import { registerErrorHandling } from "./plugins/errors";
import { registerHttpMetrics } from "./plugins/http-metrics";
import type { RouteInfo } from "./plugins/route-auth";
import { ErrorBody } from "./schemas";

export interface ApiOptions {
  registry?: Registry;
  readiness?: ReadinessCheck[];
  /** Extra route modules (tests); the product's own are listed in features/index.ts. */
  features?: Array<(app: FastifyInstance, cp: ControlPlane) => void>;
}

export interface Api {
  app: FastifyInstance;
  routes: RouteInfo[];
  registry: Registry;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export async function buildApi(cp: ControlPlane, opts: ApiOptions = {}): Promise<Api> {
  const registry =
    opts.registry ?? createMetricsRegistry({ service: "vpnpanel", version: VERSION, roles: ["api"] });
  const app = Fastify({
    loggerInstance: cp.log.child({ role: "api" }) as FastifyBaseLogger,
    trustProxy: cp.config.TRUST_PROXY,
    bodyLimit: 8 * 1024 * 1024,
    requestIdHeader: "x-request-id",
    logController: new LogController({ requestIdLogLabel: "request_id" }),
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;

  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });

  app.addSchema(ErrorBody);
  registerErrorHandling(app);
  registerHttpMetrics(app, registry);

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "vpnpanel API",
        version: VERSION,
        description:
          "Control plane for Xray and WireGuard VPN fleets. Authenticate with POST /auth/login and send `Authorization: Bearer <access_token>`. Tenant-scoped collections take the tenant from the `X-Tenant-Id` header or `tenant_id` query parameter.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", staticCSP: true });

  const routes: RouteInfo[] = [];
  registerAuthn(app, cp.auth, parseAllowList(cp.config.ADMIN_IP_ALLOWLIST), routes);

  const readiness: ReadinessCheck[] = opts.readiness ?? [
    { name: "database", check: () => cp.database.ping() },
    ...(cp.coord.kind === "redis" ? [{ name: "redis", check: () => cp.coord.ping() }] : []),
  ];
  systemRoutes(app, cp, registry, readiness);
  for (const feature of [...features, ...(opts.features ?? [])]) feature(app, cp);

  await app.ready();
  return { app, routes, registry };
}
