import type { Permission, PlatformPermission } from "@vpnpanel/control";

/**
 * Every route declares how it is guarded, in `config.auth`. Registration fails without it, and the
 * authorization-matrix tests are generated from these declarations plus the role table.
 * - public: no token (health, subscription links, JWKS)
 * - authenticated: any signed-in account (own profile, logout)
 * - tenant: needs `permission` in the tenant the object or collection belongs to
 * - platform: platform owners only
 */
export type RouteAuth =
  | { kind: "public" }
  | { kind: "authenticated" }
  | { kind: "tenant"; permission: Permission }
  | { kind: "platform"; permission: PlatformPermission }
  /** Platform owners, or tenant members holding `permission` (e.g. creating an account into a tenant). */
  | { kind: "platform-or-tenant"; permission: Permission };

export interface RouteInfo {
  method: string;
  url: string;
  auth: RouteAuth;
  /** Guarded by ADMIN_IP_ALLOWLIST (every admin route; not the public ones). */
  privileged: boolean;
  /** Whether the route validates a JSON body, and which path parameters it declares (for generated tests). */
  hasBody: boolean;
  params: string[];
}

declare module "fastify" {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
}

export const publicRoute = { auth: { kind: "public" } } as const satisfies { auth: RouteAuth };
export const signedIn = { auth: { kind: "authenticated" } } as const satisfies { auth: RouteAuth };
export const tenantRoute = (permission: Permission) => ({
  auth: { kind: "tenant", permission } as RouteAuth,
});
export const platformRoute = (permission: PlatformPermission) => ({
  auth: { kind: "platform", permission } as RouteAuth,
});
