import { parseShareLink, parseSubscriptionBody } from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";
import { seedFeedWorld } from "./sub-support";

// The feed against subscribers made and changed by the real lifecycle API (users, credentials,
// engines, tokens, state): whatever the lifecycle writes, the next GET /sub/{token} reflects.

let t: TestApi;
let world: Awaited<ReturnType<typeof seedFeedWorld>>;

beforeAll(async () => {
  t = await createTestApi({
    env: { SUB_RATE_LIMIT_PER_MINUTE: "100000", PUBLIC_URL: "https://panel.example.com" },
  });
  world = await seedFeedWorld(t, t.world.tenantA);
});
afterAll(async () => {
  await t?.close();
});

const V2RAYN = { "user-agent": "v2rayN/6.42" };
const links = (body: string) => parseSubscriptionBody(body).map(parseShareLink);
const pathOf = (url: string) => new URL(url).pathname;

async function createUser(username: string) {
  const op = t.world.members.operator;
  const res = await t.call(op, {
    method: "POST",
    url: "/users",
    payload: { username, quota_bytes: 50 * 1024 ** 3, duration_seconds: 30 * 86_400 },
  });
  expect(res.statusCode).toBe(201);
  const user = res.json();
  // The tenant's assignment strategy runs in the node consumer; here the rows are written directly.
  for (const nodeId of world.nodeIds) {
    await t.cp.database.db.execute(sql`
      INSERT INTO node_assignments (subscription_id, node_id, tenant_id)
      VALUES (${user.subscription.id}, ${nodeId}, ${t.world.tenantA}) ON CONFLICT DO NOTHING`);
  }
  return user as {
    id: string;
    subscription: { id: string; subscription_url: string };
    credentials: { xray_uuid: string };
  };
}

const call = (method: "POST", url: string, payload?: Record<string, unknown>) =>
  t.call(t.world.members.operator, { method, url, ...(payload !== undefined ? { payload } : {}) });

describe("the feed follows the lifecycle", () => {
  it("serves a user created through the API with its own credentials", async () => {
    const user = await createUser("henry");
    const url = user.subscription.subscription_url;
    expect(url).toMatch(/^https:\/\/panel\.example\.com\/sub\/[A-Za-z0-9_-]{32}$/);
    const res = await t.app.inject({ method: "GET", url: pathOf(url), headers: V2RAYN });
    expect(res.statusCode).toBe(200);
    const parsed = links(res.body);
    const vless = parsed.find((l) => l.kind !== "wireguard" && l.protocol === "vless");
    expect(vless && "uuid" in vless ? vless.uuid : null).toBe(user.credentials.xray_uuid);
    expect(parsed.some((l) => l.kind === "wireguard")).toBe(true);
    const admin = await t.call(t.world.members.auditor, { method: "GET", url: `/users/${user.id}/configs` });
    expect(admin.json().subscription_url).toBe(url);
  });

  it("credential rotation, engines, disable and token reissue all reach the next request", async () => {
    const user = await createUser("irene");
    const path = pathOf(user.subscription.subscription_url);
    const first = await t.app.inject({ method: "GET", url: path, headers: V2RAYN });
    const etag = first.headers.etag as string;

    const rotated = await call("POST", `/users/${user.id}/credentials/rotate`, {});
    expect(rotated.statusCode).toBe(200);
    const afterRotate = await t.app.inject({
      method: "GET",
      url: path,
      headers: { ...V2RAYN, "if-none-match": etag },
    });
    expect(afterRotate.statusCode).toBe(200);
    const vless = links(afterRotate.body).find((l) => l.kind !== "wireguard" && l.protocol === "vless");
    expect(vless && "uuid" in vless ? vless.uuid : null).toBe(rotated.json().credentials.xray_uuid);
    expect(rotated.json().credentials.xray_uuid).not.toBe(user.credentials.xray_uuid);

    expect((await call("POST", `/users/${user.id}/engines`, { engines: ["xray"] })).statusCode).toBe(200);
    const xrayOnly = await t.app.inject({ method: "GET", url: path, headers: V2RAYN });
    expect(links(xrayOnly.body).some((l) => l.kind === "wireguard")).toBe(false);
    const qr = await t.call(t.world.members.operator, {
      method: "GET",
      url: `/users/${user.id}/wireguard/qr`,
    });
    expect(qr.statusCode).toBe(403);

    expect((await call("POST", `/users/${user.id}/subscription/disable`, {})).statusCode).toBe(200);
    const disabled = await t.app.inject({ method: "GET", url: path, headers: V2RAYN });
    expect(links(disabled.body).map((l) => l.name)).toEqual(["Disabled"]);

    const reissued = await call("POST", `/users/${user.id}/subscription/token`);
    expect(reissued.statusCode).toBe(200);
    const newUrl = reissued.json().subscription.subscription_url as string;
    expect(newUrl).not.toBe(user.subscription.subscription_url);
    expect((await t.app.inject({ method: "GET", url: path, headers: V2RAYN })).statusCode).toBe(404);
    expect((await t.app.inject({ method: "GET", url: pathOf(newUrl), headers: V2RAYN })).statusCode).toBe(
      200,
    );
  });

  it("a node created and changed through the nodes API reaches the next request", async () => {
    const admin = t.world.members.admin;
    const inbound = (port: number) => ({
      tag: "vless-tcp",
      protocol: "vless",
      port,
      transport: { type: "tcp" },
      security: { type: "none" },
    });
    const created = await t.call(admin, {
      method: "POST",
      url: "/nodes",
      payload: { name: "Paris", address: "fr.example.com", core: "xray", inbounds: [inbound(443)] },
    });
    expect(created.statusCode).toBe(201);
    const nodeId = created.json().id as string;
    // The tenant's default strategy ('all') assigns the new node at creation: the first fetch lists it.
    const user = await createUser("judy");
    const path = pathOf(user.subscription.subscription_url);
    const before = await t.app.inject({ method: "GET", url: path, headers: V2RAYN });
    expect(links(before.body).some((l) => l.address === "fr.example.com" && l.port === 443)).toBe(true);

    const patched = await t.call(admin, {
      method: "PATCH",
      url: `/nodes/${nodeId}`,
      payload: { inbounds: [inbound(8443)] },
    });
    expect(patched.statusCode).toBe(200);
    const after = await t.app.inject({
      method: "GET",
      url: path,
      headers: { ...V2RAYN, "if-none-match": before.headers.etag as string },
    });
    expect(after.statusCode).toBe(200);
    const paris = links(after.body).filter((l) => l.address === "fr.example.com");
    expect(paris.map((l) => l.port)).toEqual([8443]);
  });
});
