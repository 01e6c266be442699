import { randomBytes } from "node:crypto";
import { type ControlPlane, systemActor } from "@vpnpanel/control";
import { schema } from "@vpnpanel/db";
import { count } from "drizzle-orm";

export interface FirstStart {
  email: string;
  password: string;
  tenantId: string;
}

/**
 * On the very first start (no account exists) creates a platform owner with a generated password and
 * a default tenant it owns. Returns the credentials so they can be printed once; never logged.
 */
export async function bootstrapFirstStart(cp: ControlPlane): Promise<FirstStart | null> {
  const [row] = await cp.database.db.select({ n: count() }).from(schema.admins);
  if ((row?.n ?? 0) > 0) return null;
  const actor = systemActor();
  const password = randomBytes(18).toString("base64url");
  const email = "owner@vpnpanel.local";
  const tenant = await cp.tenants.create(actor, { name: "Default", slug: "default" });
  await cp.admins.create(actor, {
    email,
    password,
    isPlatformOwner: true,
    tenantId: tenant.id,
    role: "owner",
  });
  return { email, password, tenantId: tenant.id };
}
