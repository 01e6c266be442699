import { type Api, type ApiOptions, buildApi } from "@vpnpanel/api";
import { type Role, roles, systemActor } from "@vpnpanel/control";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { createTestControlPlane, type TestControlPlane } from "./control-plane";

export const PASSWORD = "correct horse battery staple";

export interface Account {
  id: string;
  email: string;
  token: string;
}

/**
 * Two tenants (A and B) and an account for every role in tenant A, plus a platform owner and an
 * owner of tenant B. Tests act as these accounts through the real HTTP stack (`app.inject`).
 */
export interface World {
  tenantA: string;
  tenantB: string;
  platform: Account;
  ownerB: Account;
  /** role → account holding that role in tenant A */
  members: Record<Role, Account>;
}

export interface TestApi extends TestControlPlane {
  api: Api;
  app: FastifyInstance;
  world: World;
  /** Sends a request as `who` (an account or null for anonymous). */
  call(who: Account | null, opts: InjectOptions): Promise<LightMyRequestResponse>;
  login(email: string, password?: string): Promise<Account>;
}

export async function createTestApi(
  opts: { env?: Record<string, string>; api?: ApiOptions; seed?: boolean } = {},
): Promise<TestApi> {
  const base = await createTestControlPlane(opts.env ? { env: opts.env } : {});
  const api = await buildApi(base.cp, opts.api);
  const app = api.app;

  const call = (who: Account | null, o: InjectOptions) =>
    app.inject({
      ...o,
      headers: { ...(o.headers ?? {}), ...(who ? { authorization: `Bearer ${who.token}` } : {}) },
    });

  const login = async (email: string, password = PASSWORD): Promise<Account> => {
    const res = await app.inject({ method: "POST", url: "/auth/login", payload: { email, password } });
    if (res.statusCode !== 200) throw new Error(`login ${email} failed: ${res.statusCode} ${res.body}`);
    const me = await app.inject({
      method: "GET",
      url: "/auth/me",
      headers: { authorization: `Bearer ${res.json().access_token}` },
    });
    return { id: me.json().id, email, token: res.json().access_token };
  };

  let world = {} as World;
  if (opts.seed !== false) {
    const sys = systemActor();
    const a = await base.cp.tenants.create(sys, { name: "Tenant A", slug: "tenant-a" });
    const b = await base.cp.tenants.create(sys, { name: "Tenant B", slug: "tenant-b" });
    await base.cp.admins.create(sys, {
      email: "platform@test.local",
      password: PASSWORD,
      isPlatformOwner: true,
    });
    await base.cp.admins.create(sys, {
      email: "owner-b@test.local",
      password: PASSWORD,
      tenantId: b.id,
      role: "owner",
    });
    for (const role of roles) {
      await base.cp.admins.create(sys, {
        email: `${role}-a@test.local`,
        password: PASSWORD,
        tenantId: a.id,
        role,
      });
    }
    const members = {} as Record<Role, Account>;
    for (const role of roles) members[role] = await login(`${role}-a@test.local`);
    world = {
      tenantA: a.id,
      tenantB: b.id,
      platform: await login("platform@test.local"),
      ownerB: await login("owner-b@test.local"),
      members,
    };
  }

  return {
    ...base,
    api,
    app,
    world,
    call,
    login,
    async close() {
      await app.close();
      await base.close();
    },
  };
}
