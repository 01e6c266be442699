import { BlockList, isIP } from "node:net";
import { AppError } from "@vpnpanel/common";
import { type Actor, type AuthService, requirePlatform } from "@vpnpanel/control";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RouteAuth, RouteInfo } from "./route-auth";

declare module "fastify" {
  interface FastifyRequest {
    actor?: Actor;
  }
}

/** Parses ADMIN_IP_ALLOWLIST; an entry that is not a CIDR or address stops start-up. */
export function parseAllowList(entries: string[]): BlockList | null {
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, bits] = entry.split("/");
    const family = isIP(addr ?? "");
    if (!family)
      throw new AppError("bad_request", `ADMIN_IP_ALLOWLIST: "${entry}" is not an IP address or CIDR`);
    const type = family === 4 ? "ipv4" : "ipv6";
    const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      throw new AppError("bad_request", `ADMIN_IP_ALLOWLIST: "${entry}" has an invalid prefix length`);
    }
    list.addSubnet(addr!, prefix, type);
  }
  return list;
}

function allowed(list: BlockList, ip: string): boolean {
  const v4mapped = ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : null;
  if (v4mapped) return list.check(v4mapped, "ipv4");
  const family = isIP(ip);
  if (!family) return false;
  return list.check(ip, family === 4 ? "ipv4" : "ipv6");
}

export function bearerOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1]! : null;
}

export function requireActor(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError("unauthenticated", "authentication required");
  return req.actor;
}

/**
 * Installs the guards every route declares in `config.auth`, and records the route table. A route
 * without a declaration fails registration.
 */
export function registerAuthn(
  app: FastifyInstance,
  auth: AuthService,
  allowList: BlockList | null,
  routes: RouteInfo[],
) {
  app.decorateRequest("actor", undefined);

  app.addHook("onRoute", (opts) => {
    const url = opts.url;
    if (url.startsWith("/docs")) return; // Swagger UI's own static routes.
    const decl = (opts.config as { auth?: RouteAuth } | undefined)?.auth;
    if (!decl) throw new Error(`route ${String(opts.method)} ${url} does not declare config.auth`);
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    for (const method of methods) {
      if (method === "HEAD") continue;
      const schema = opts.schema as
        | { body?: unknown; params?: { properties?: Record<string, unknown> } }
        | undefined;
      routes.push({
        method,
        url,
        auth: decl,
        privileged: decl.kind !== "public" || url === "/auth/login",
        hasBody: schema?.body !== undefined,
        params: Object.keys(schema?.params?.properties ?? {}),
      });
    }
  });

  app.addHook("onRequest", async (req) => {
    const decl = req.routeOptions.config.auth;
    if (!decl) return;
    const privileged =
      decl.kind !== "public" ||
      req.routeOptions.url === "/auth/login" ||
      req.routeOptions.url === "/auth/refresh";
    if (privileged && allowList && !allowed(allowList, req.ip)) {
      throw new AppError("forbidden", "your address is not allowed to use the admin API");
    }
  });

  app.addHook("preHandler", async (req) => {
    const decl = req.routeOptions.config.auth;
    if (!decl || decl.kind === "public") return;
    const token = bearerOf(req);
    if (!token)
      throw new AppError("unauthenticated", "authentication required (Authorization: Bearer <token>)");
    const actor = await auth.authenticate(token, { requestId: req.id, sourceIp: req.ip });
    req.actor = actor;
    const tenantHint = req.headers["x-tenant-id"];
    req.log = req.log.child({
      admin_id: actor.id,
      ...(typeof tenantHint === "string" ? { tenant_id: tenantHint } : {}),
    });
    if (decl.kind === "platform") requirePlatform(actor, decl.permission);
  });
}
