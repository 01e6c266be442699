import { systemActor } from "@vpnpanel/control";
import { createCsr, generateKeyPair } from "@vpnpanel/pki";
import type { TestApi } from "../../../../test/support/api";
import { seedSubscribers } from "../../../collector/test/support/seed";
import type { Fixtures } from "./types";

// Authorization-matrix fixtures for the node and traffic routes (issue 4).

let n = 0;
const unique = () => `${Date.now().toString(36)}${(n++).toString(36)}`;

async function node(t: TestApi, tenantId: string) {
  return t.cp.nodes.create(systemActor(), tenantId, { name: `m-${unique()}`, address: "edge.example.com" });
}

async function subscription(t: TestApi, tenantId: string) {
  const [s] = await seedSubscribers(t.cp.database.db, t.cp.box, { tenantId, count: 1 });
  return s!.subscriptionId;
}

async function enrolled(t: TestApi, tenantId: string) {
  const created = await node(t, tenantId);
  const { token } = await t.cp.enrollment.createToken(systemActor(), created.id);
  const keyPair = await generateKeyPair();
  await t.cp.enrollment.enroll({
    token,
    csrPem: await createCsr({ keyPair }),
    agentVersion: "m",
    hostname: "m",
  });
  return created;
}

const hourAgo = () => new Date(Date.now() - 3_600_000).toISOString();
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

export const nodeFixtures: Fixtures = {
  "GET /nodes": async (_t, tenantId) => ({ method: "GET", url: `/nodes?tenant_id=${tenantId}` }),
  "POST /nodes": async (_t, tenantId) => ({
    method: "POST",
    url: `/nodes?tenant_id=${tenantId}`,
    payload: { name: `n-${unique()}`, address: "edge.example.com", engines: ["xray"] },
  }),
  "GET /nodes/:id": async (t, tenantId) => ({ method: "GET", url: `/nodes/${(await node(t, tenantId)).id}` }),
  "PATCH /nodes/:id": async (t, tenantId) => ({
    method: "PATCH",
    url: `/nodes/${(await node(t, tenantId)).id}`,
    payload: { tags: ["eu"] },
  }),
  "DELETE /nodes/:id": async (t, tenantId) => ({
    method: "DELETE",
    url: `/nodes/${(await node(t, tenantId)).id}`,
  }),
  "GET /nodes/:id/policy": async (t, tenantId) => ({
    method: "GET",
    url: `/nodes/${(await node(t, tenantId)).id}/policy`,
  }),
  "PUT /nodes/:id/policy": async (t, tenantId) => ({
    method: "PUT",
    url: `/nodes/${(await node(t, tenantId)).id}/policy`,
    payload: { usage_interval_seconds: 30 },
  }),
  "GET /nodes/:id/health": async (t, tenantId) => ({
    method: "GET",
    url: `/nodes/${(await node(t, tenantId)).id}/health`,
  }),
  "POST /nodes/:id/enrollment-tokens": async (t, tenantId) => ({
    method: "POST",
    url: `/nodes/${(await node(t, tenantId)).id}/enrollment-tokens`,
  }),
  "GET /nodes/:id/certificates": async (t, tenantId) => ({
    method: "GET",
    url: `/nodes/${(await node(t, tenantId)).id}/certificates`,
  }),
  "POST /nodes/:id/revoke": async (t, tenantId) => ({
    method: "POST",
    url: `/nodes/${(await enrolled(t, tenantId)).id}/revoke`,
    payload: { reason: "matrix" },
  }),
  "POST /nodes/:id/api-key": async (t, tenantId) => ({
    method: "POST",
    url: `/nodes/${(await node(t, tenantId)).id}/api-key`,
  }),
  "GET /nodes/:id/assignments": async (t, tenantId) => ({
    method: "GET",
    url: `/nodes/${(await node(t, tenantId)).id}/assignments`,
  }),
  "PUT /nodes/:id/assignments/:subscriptionId": async (t, tenantId) => {
    const id = (await node(t, tenantId)).id;
    return { method: "PUT", url: `/nodes/${id}/assignments/${await subscription(t, tenantId)}`, payload: {} };
  },
  "DELETE /nodes/:id/assignments/:subscriptionId": async (t, tenantId) => {
    const id = (await node(t, tenantId)).id;
    const sub = await subscription(t, tenantId);
    await t.cp.nodes.assign(systemActor(), id, sub, "primary");
    return { method: "DELETE", url: `/nodes/${id}/assignments/${sub}` };
  },
  "GET /node-assignment-policy": async (_t, tenantId) => ({
    method: "GET",
    url: `/node-assignment-policy?tenant_id=${tenantId}`,
  }),
  "PUT /node-assignment-policy": async (_t, tenantId) => ({
    method: "PUT",
    url: `/node-assignment-policy?tenant_id=${tenantId}`,
    payload: { strategy: "all" },
  }),
  "POST /node-assignments/rebalance": async (_t, tenantId) => ({
    method: "POST",
    url: `/node-assignments/rebalance?tenant_id=${tenantId}`,
  }),
  "POST /traffic/events": async (t, tenantId) => ({
    method: "POST",
    url: "/traffic/events",
    payload: {
      node_id: (await node(t, tenantId)).id,
      seq: 1,
      sampled_at: new Date().toISOString(),
      samples: [],
    },
  }),
  "POST /traffic/node-events": async (t, tenantId) => {
    const { apiKey } = await t.cp.nodes.rotateApiKey(systemActor(), (await node(t, tenantId)).id);
    return {
      method: "POST",
      url: "/traffic/node-events",
      headers: { authorization: `NodeKey ${apiKey}` },
      payload: { seq: 1, sampled_at: new Date().toISOString(), samples: [] },
    };
  },
  "GET /traffic/usage": async (_t, tenantId) => ({
    method: "GET",
    url: `/traffic/usage?tenant_id=${tenantId}&from=${hourAgo()}&to=${inAnHour()}`,
  }),
  "GET /traffic/summary": async (_t, tenantId) => ({
    method: "GET",
    url: `/traffic/summary?tenant_id=${tenantId}&from=${hourAgo()}&to=${inAnHour()}`,
  }),
  "GET /traffic/rollups": async (_t, tenantId) => ({
    method: "GET",
    url: `/traffic/rollups?tenant_id=${tenantId}&from=${hourAgo()}&to=${inAnHour()}`,
  }),
};
