import { systemActor } from "@vpnpanel/control";
import { PASSWORD } from "../../../../test/support/api";
import type { Fixtures } from "./types";

let n = 0;
const unique = () => `${Date.now().toString(36)}${(n++).toString(36)}`;

export const foundationFixtures: Fixtures = {
  "GET /health": async () => ({ method: "GET", url: "/health" }),
  "GET /ready": async () => ({ method: "GET", url: "/ready" }),
  "GET /metrics": async () => ({ method: "GET", url: "/metrics" }),
  "GET /openapi.json": async () => ({ method: "GET", url: "/openapi.json" }),
  "GET /.well-known/jwks.json": async () => ({ method: "GET", url: "/.well-known/jwks.json" }),
  "POST /auth/login": async () => ({
    method: "POST",
    url: "/auth/login",
    payload: { email: "operator-a@test.local", password: PASSWORD },
  }),
  "POST /auth/refresh": async (t) => {
    const r = await t.app.inject({
      method: "POST",
      url: "/auth/login",
      payload: { email: "auditor-a@test.local", password: PASSWORD },
    });
    return { method: "POST", url: "/auth/refresh", payload: { refresh_token: r.json().refresh_token } };
  },
  // Logging out ends the caller's session, so the matrix logs the caller in afresh first.
  "POST /auth/logout": async () => ({ method: "POST", url: "/auth/logout", freshSession: true }) as never,
  "GET /auth/me": async () => ({ method: "GET", url: "/auth/me" }),
  "GET /roles": async () => ({ method: "GET", url: "/roles" }),
  "GET /tenants": async () => ({ method: "GET", url: "/tenants" }),
  "POST /tenants": async () => ({
    method: "POST",
    url: "/tenants",
    payload: { name: "New", slug: `t-${unique()}` },
  }),
  "GET /tenants/:id": async (_t, tenantId) => ({ method: "GET", url: `/tenants/${tenantId}` }),
  "PATCH /tenants/:id": async (_t, tenantId) => ({
    method: "PATCH",
    url: `/tenants/${tenantId}`,
    payload: { settings: { brand: "x" } },
  }),
  "DELETE /tenants/:id": async (t) => {
    const tenant = await t.cp.tenants.create(systemActor(), { name: "Doomed", slug: `d-${unique()}` });
    return { method: "DELETE", url: `/tenants/${tenant.id}` };
  },
  "GET /admins": async () => ({ method: "GET", url: "/admins" }),
  "POST /admins": async (_t, tenantId) => ({
    method: "POST",
    url: "/admins",
    payload: {
      email: `new-${unique()}@test.local`,
      password: PASSWORD,
      tenant_id: tenantId,
      role: "operator",
    },
  }),
  "GET /admins/:id": async (_t, _tenant, who) => ({ method: "GET", url: `/admins/${who.id}` }),
  "PATCH /admins/:id": async (_t, _tenant, who) => ({
    method: "PATCH",
    url: `/admins/${who.id}`,
    payload: { display_name: "Renamed" },
  }),
  "GET /tenants/:id/memberships": async (_t, tenantId) => ({
    method: "GET",
    url: `/tenants/${tenantId}/memberships`,
  }),
  "POST /tenants/:id/memberships": async (t, tenantId) => {
    const a = await t.cp.admins.create(systemActor(), {
      email: `m-${unique()}@test.local`,
      password: PASSWORD,
    });
    return {
      method: "POST",
      url: `/tenants/${tenantId}/memberships`,
      payload: { admin_id: a.id, role: "auditor" },
    };
  },
  "DELETE /tenants/:id/memberships/:adminId": async (t, tenantId) => {
    const a = await t.cp.admins.create(systemActor(), {
      email: `m-${unique()}@test.local`,
      password: PASSWORD,
      tenantId,
      role: "auditor",
    });
    return { method: "DELETE", url: `/tenants/${tenantId}/memberships/${a.id}` };
  },
  "GET /audit": async (_t, tenantId) => ({ method: "GET", url: `/audit?tenant_id=${tenantId}` }),
};
