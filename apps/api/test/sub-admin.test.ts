import { parseShareLink } from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";
import { type SeededUser, seedFeedWorld, seedUser } from "./sub-support";

// The admin views of a subscriber's documents: engine-keyed artifacts and the WireGuard QR code,
// under the same scope rules as every other tenant object.

let t: TestApi;
let world: Awaited<ReturnType<typeof seedFeedWorld>>;
let both: SeededUser;
let xrayOnly: SeededUser;
let wgOnly: SeededUser;

beforeAll(async () => {
  t = await createTestApi({ env: { PUBLIC_URL: "https://panel.example.com" } });
  world = await seedFeedWorld(t, t.world.tenantA);
  both = await seedUser(t, t.world.tenantA, { username: "dave", nodeIds: world.nodeIds, ipOffset: 2 });
  xrayOnly = await seedUser(t, t.world.tenantA, {
    username: "erin",
    nodeIds: world.nodeIds,
    userEngines: ["xray"],
  });
  wgOnly = await seedUser(t, t.world.tenantA, {
    username: "frank",
    nodeIds: world.nodeIds,
    engines: ["wireguard"],
  });
});
afterAll(async () => {
  await t?.close();
});

const configs = (userId: string, who = t.world.members.auditor) =>
  t.call(who, { method: "GET", url: `/users/${userId}/configs` });
const qr = (userId: string, query = "", who = t.world.members.operator) =>
  t.call(who, { method: "GET", url: `/users/${userId}/wireguard/qr${query}` });

describe("GET /users/{id}/configs", () => {
  it("returns links per Xray inbound/host and a .conf per WireGuard node, plus the subscription URL", async () => {
    const res = await configs(both.userId);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      user_id: both.userId,
      subscription_id: both.subscriptionId,
      subscription_url: `https://panel.example.com/sub/${both.token}`,
      status: "active",
      blocked_reason: null,
      engines: ["xray", "wireguard"],
      skipped: [],
    });
    expect(body.xray.links).toHaveLength(8);
    for (const l of body.xray.links) expect(parseShareLink(l.link).name).toBe(l.name);
    expect(body.wireguard.configs).toEqual([
      expect.objectContaining({
        node_id: world.xrayNode,
        node_name: "Frankfurt",
        file_name: "Frankfurt.conf",
        // 10.80.0.4 with 4 peers per interface lives on wg1.
        endpoint: "de.example.com:51821",
      }),
    ]);
    expect(body.wireguard.configs[0].conf).toContain("Address = 10.80.0.4/32, fd80::4/128");
  });

  it("respects the user's engines: an engine that is not allowed is null", async () => {
    const x = (await configs(xrayOnly.userId)).json();
    expect(x.engines).toEqual(["xray"]);
    expect(x.wireguard).toBeNull();
    expect(x.xray.links.length).toBeGreaterThan(0);
    const w = (await configs(wgOnly.userId)).json();
    expect(w.engines).toEqual(["wireguard"]);
    expect(w.xray).toBeNull();
    expect(w.wireguard.configs).toHaveLength(1);
  });

  it("shows a blocked user's real artifacts together with the reason", async () => {
    const limited = await seedUser(t, t.world.tenantA, {
      username: "grace",
      nodeIds: world.nodeIds,
      state: "limited",
      quotaBytes: 1024,
      usedBytes: 4096,
    });
    const body = (await configs(limited.userId)).json();
    expect(body.status).toBe("limited");
    expect(body.blocked_reason).toBe("Quota exhausted");
    expect(body.xray.links.length).toBe(8);
  });

  it("an owner of another tenant gets 404, and so does an unknown id", async () => {
    const res = await configs(both.userId, t.world.ownerB);
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe("not_found");
    expect((await configs("usr_00000000000000000000000000")).statusCode).toBe(404);
  });
});

describe("GET /users/{id}/wireguard/qr", () => {
  it("returns an SVG QR code of the user's WireGuard config", async () => {
    const res = await qr(both.userId);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("image/svg+xml; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("private, no-store");
    expect(res.body).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect((await qr(both.userId, `?node_id=${world.xrayNode}`)).statusCode).toBe(200);
  });

  it("is 403 when WireGuard is not allowed for the user", async () => {
    const res = await qr(xrayOnly.userId);
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatchObject({
      code: "forbidden",
      message: "WireGuard is not allowed for this user",
    });
  });

  it("is 404 for another tenant's user, before anything about its engines is revealed", async () => {
    expect((await qr(xrayOnly.userId, "", t.world.ownerB)).statusCode).toBe(404);
    expect((await qr(both.userId, "", t.world.ownerB)).statusCode).toBe(404);
  });

  it("is 404 for a node that gives the user no WireGuard", async () => {
    const res = await qr(both.userId, `?node_id=${world.v2rayNode}`);
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe("no WireGuard config for this node");
  });

  it("is 401 without a token", async () => {
    const res = await t.app.inject({ method: "GET", url: `/users/${both.userId}/wireguard/qr` });
    expect(res.statusCode).toBe(401);
  });

  it("follows a user's engines override immediately", async () => {
    await t.cp.database.db.execute(sql`UPDATE users SET engines = ARRAY['xray'] WHERE id = ${both.userId}`);
    expect((await qr(both.userId)).statusCode).toBe(403);
    await t.cp.database.db.execute(sql`UPDATE users SET engines = NULL WHERE id = ${both.userId}`);
    expect((await qr(both.userId)).statusCode).toBe(200);
  });
});
