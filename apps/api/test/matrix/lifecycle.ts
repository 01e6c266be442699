import { systemActor } from "@vpnpanel/control";
import type { TestApi } from "../../../../test/support/api";
import type { Fixtures } from "./types";

// Plans, users, subscriptions, bulk operations and webhooks. Every request targets a fresh object of
// the given tenant (destructive routes run once per role), created directly through the services.

let n = 0;
const unique = (p: string) => `${p}-${Date.now().toString(36)}-${(n++).toString(36)}`;
const sys = systemActor();

const heldPlans = new WeakMap<TestApi, Map<string, Promise<string>>>();
/** One held plan per tenant (made once). */
function heldPlan(t: TestApi, tenantId: string): Promise<string> {
  let byTenant = heldPlans.get(t);
  if (!byTenant) {
    byTenant = new Map();
    heldPlans.set(t, byTenant);
  }
  let id = byTenant.get(tenantId);
  if (!id) {
    id = t.cp.plans
      .create(sys, tenantId, { name: unique("held"), holdMode: "first_connection", durationSeconds: 86_400 })
      .then((p) => p.id);
    byTenant.set(tenantId, id);
  }
  return id;
}

const plan = (t: TestApi, tenantId: string) => t.cp.plans.create(sys, tenantId, { name: unique("plan") });
const user = (t: TestApi, tenantId: string, extra: { planId?: string } = {}) =>
  t.cp.users.create(sys, tenantId, { username: unique("m"), durationSeconds: 86_400, ...extra });
const webhook = (t: TestApi, tenantId: string) =>
  // An address literal: valid under the default URL policy without DNS, and never called here.
  t.cp.webhooks.create(sys, tenantId, { url: "https://1.1.1.1/hooks/matrix" });
const subOp = (action: string, payload?: Record<string, unknown>) => async (t: TestApi, tenantId: string) => {
  const u = await user(t, tenantId);
  return {
    method: "POST" as const,
    url: `/users/${u.id}/subscription/${action}`,
    ...(payload ? { payload } : {}),
  };
};

export const lifecycleFixtures: Fixtures = {
  "GET /plans": async (_t, tenantId) => ({ method: "GET", url: `/plans?tenant_id=${tenantId}` }),
  "POST /plans": async (_t, tenantId) => ({
    method: "POST",
    url: `/plans?tenant_id=${tenantId}`,
    payload: { name: unique("p"), quota_bytes: 2 ** 30, duration_seconds: 86_400 },
  }),
  "GET /plans/:id": async (t, tenantId) => ({ method: "GET", url: `/plans/${(await plan(t, tenantId)).id}` }),
  "PATCH /plans/:id": async (t, tenantId) => ({
    method: "PATCH",
    url: `/plans/${(await plan(t, tenantId)).id}`,
    payload: { quota_bytes: null },
  }),
  "DELETE /plans/:id": async (t, tenantId) => ({
    method: "DELETE",
    url: `/plans/${(await plan(t, tenantId)).id}`,
  }),

  "GET /users": async (_t, tenantId) => ({
    method: "GET",
    url: `/users?tenant_id=${tenantId}&status=active`,
  }),
  "POST /users": async (_t, tenantId) => ({
    method: "POST",
    url: `/users?tenant_id=${tenantId}`,
    payload: { username: unique("new"), quota_bytes: 2 ** 30 },
  }),
  "GET /users/:id": async (t, tenantId) => ({ method: "GET", url: `/users/${(await user(t, tenantId)).id}` }),
  "PATCH /users/:id": async (t, tenantId) => ({
    method: "PATCH",
    url: `/users/${(await user(t, tenantId)).id}`,
    payload: { note: "matrix" },
  }),
  "DELETE /users/:id": async (t, tenantId) => ({
    method: "DELETE",
    url: `/users/${(await user(t, tenantId)).id}`,
  }),
  "POST /users/:id/engines": async (t, tenantId) => ({
    method: "POST",
    url: `/users/${(await user(t, tenantId)).id}/engines`,
    payload: { engines: ["xray"] },
  }),
  "POST /users/:id/credentials/rotate": async (t, tenantId) => ({
    method: "POST",
    url: `/users/${(await user(t, tenantId)).id}/credentials/rotate`,
  }),

  "POST /users/:id/subscription/renew": subOp("renew", { extend_seconds: 3600 }),
  "POST /users/:id/subscription/quota": subOp("quota", { add_bytes: 1024 }),
  "POST /users/:id/subscription/reset": subOp("reset"),
  "POST /users/:id/subscription/disable": subOp("disable"),
  "POST /users/:id/subscription/token": subOp("token"),
  "POST /users/:id/subscription/plan": async (t, tenantId) => {
    const [u, p] = await Promise.all([user(t, tenantId), plan(t, tenantId)]);
    return { method: "POST", url: `/users/${u.id}/subscription/plan`, payload: { plan_id: p.id } };
  },
  "POST /users/:id/subscription/enable": async (t, tenantId) => {
    const u = await user(t, tenantId);
    await t.cp.subscriptions.disable(sys, u.id);
    return { method: "POST", url: `/users/${u.id}/subscription/enable` };
  },
  "POST /users/:id/subscription/activate": async (t, tenantId) => {
    const u = await user(t, tenantId, { planId: await heldPlan(t, tenantId) });
    return { method: "POST", url: `/users/${u.id}/subscription/activate` };
  },

  "POST /users/bulk": async (_t, tenantId) => ({
    method: "POST",
    url: `/users/bulk?tenant_id=${tenantId}`,
    payload: { users: [{ username: unique("b") }, { username: unique("b") }] },
  }),
  "POST /users/bulk/extend": async (_t, tenantId) => ({
    method: "POST",
    url: `/users/bulk/extend?tenant_id=${tenantId}`,
    payload: { filter: { username: "bulk-matrix-none" }, extend_seconds: 60 },
  }),
  "POST /users/bulk/add-quota": async (_t, tenantId) => ({
    method: "POST",
    url: `/users/bulk/add-quota?tenant_id=${tenantId}`,
    payload: { filter: { status: "limited" }, add_bytes: 1024 },
  }),

  "GET /webhooks": async (_t, tenantId) => ({ method: "GET", url: `/webhooks?tenant_id=${tenantId}` }),
  "POST /webhooks": async (_t, tenantId) => ({
    method: "POST",
    url: `/webhooks?tenant_id=${tenantId}`,
    payload: { url: "https://1.1.1.1/hooks/new", events: ["user.expired"] },
  }),
  "GET /webhooks/:id": async (t, tenantId) => ({
    method: "GET",
    url: `/webhooks/${(await webhook(t, tenantId)).id}`,
  }),
  "PATCH /webhooks/:id": async (t, tenantId) => ({
    method: "PATCH",
    url: `/webhooks/${(await webhook(t, tenantId)).id}`,
    payload: { enabled: false },
  }),
  "DELETE /webhooks/:id": async (t, tenantId) => ({
    method: "DELETE",
    url: `/webhooks/${(await webhook(t, tenantId)).id}`,
  }),
  "GET /webhooks/:id/deliveries": async (t, tenantId) => ({
    method: "GET",
    url: `/webhooks/${(await webhook(t, tenantId)).id}/deliveries`,
  }),
};
