// Roles and their permissions, declared as data in one place. Routes name the permission they need;
// the authorization-matrix tests are generated from this table, so a new route cannot skip it.

export const roles = ["owner", "admin", "operator", "auditor"] as const;
export type Role = (typeof roles)[number];

export const permissions = [
  "memberships:read",
  "memberships:write",
  "audit:read",
  "plans:read",
  "plans:write",
  "users:read",
  "users:write",
  "subscriptions:read",
  "subscriptions:write",
  "nodes:read",
  "nodes:write",
  "traffic:read",
  "traffic:write",
  "webhooks:read",
  "webhooks:write",
  "templates:read",
  "templates:write",
  "tenant:read",
  "tenant:settings",
] as const;
export type Permission = (typeof permissions)[number];

const readAll = permissions.filter((p) => p.endsWith(":read"));
const ownerOnly: readonly Permission[] = ["memberships:write", "audit:read", "tenant:settings"];

export const rolePermissions = {
  // Everything in the tenant, including who may act in it and billing-like settings.
  owner: [...permissions],
  // Runs the service: subscribers, plans, nodes, integrations; cannot change who has access, read the
  // audit log or change tenant settings.
  admin: permissions.filter((p) => !ownerOnly.includes(p)),
  // Support desk: subscribers and their subscriptions only.
  operator: [
    "plans:read",
    "users:read",
    "users:write",
    "subscriptions:read",
    "subscriptions:write",
    "traffic:read",
    "tenant:read",
  ],
  // Read-only everywhere in the tenant, including the audit log.
  auditor: readAll,
} as const satisfies Record<Role, readonly Permission[]>;

/** Platform-level abilities held only by platform owners (not tied to a tenant). */
export const platformPermissions = ["tenants:read", "tenants:write", "admins:read", "admins:write"] as const;
export type PlatformPermission = (typeof platformPermissions)[number];

export function roleHas(role: Role, permission: Permission): boolean {
  return (rolePermissions[role] as readonly Permission[]).includes(permission);
}

export function isRole(value: string): value is Role {
  return (roles as readonly string[]).includes(value);
}
