import { buildApi } from "@vpnpanel/api";
import { type ControlPlane, createControlPlane } from "@vpnpanel/control";
import { parseShareLink, parseSubscriptionBody } from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { createTestApi, type TestApi } from "../../../test/support/api";
import { testConfig } from "../../../test/support/control-plane";
import { rotateCredentials, type SeededUser, seedFeedWorld, seedUser, xrayInbounds } from "./sub-support";

// Rendered subscriptions are cached under their ETag, and the ETag is computed from every input, so
// a change anywhere reaches clients on the next request, on every replica, with no explicit purge.

let t: TestApi;
let world: Awaited<ReturnType<typeof seedFeedWorld>>;
let user: SeededUser;
// A second API replica on the same database and coordinator (Redis when REDIS_URL is set).
let replica: { cp: ControlPlane; app: FastifyInstance };

beforeAll(async () => {
  t = await createTestApi({ env: { SUB_RATE_LIMIT_PER_MINUTE: "100000" } });
  world = await seedFeedWorld(t, t.world.tenantA);
  user = await seedUser(t, t.world.tenantA, { username: "carol", nodeIds: world.nodeIds });
  const cp = await createControlPlane(testConfig({ SUB_RATE_LIMIT_PER_MINUTE: "100000" }), {
    database: t.testDb.database,
    coord: t.cp.coord,
    clock: t.clock,
    skipMigrations: true,
    log: t.cp.log,
  });
  replica = { cp, app: (await buildApi(cp)).app };
});
afterAll(async () => {
  await replica?.app.close();
  await t?.close();
});

const get = (app: FastifyInstance, ua: string, etag?: string, token = user.token) =>
  app.inject({
    method: "GET",
    url: `/sub/${token}`,
    headers: { "user-agent": ua, ...(etag ? { "if-none-match": etag } : {}) },
  });
const V2RAYN = "v2rayN/6.42";
const MIHOMO = "mihomo/1.18.5";
const links = (body: string) => parseSubscriptionBody(body).map(parseShareLink);

/** Fetches the document, then checks that `change` makes the old ETag miss on both replicas. */
async function expectInvalidated(ua: string, change: () => Promise<void>) {
  const before = await get(t.app, ua);
  expect(before.statusCode).toBe(200);
  const etag = before.headers.etag as string;
  expect((await get(t.app, ua, etag)).statusCode).toBe(304);
  expect((await get(replica.app, ua, etag)).statusCode).toBe(304);
  await change();
  const after = await get(t.app, ua, etag);
  const other = await get(replica.app, ua, etag);
  expect(after.statusCode).toBe(200);
  expect(other.statusCode).toBe(200);
  expect(after.headers.etag).not.toBe(etag);
  expect(other.headers.etag).toBe(after.headers.etag);
  expect(other.body).toBe(after.body);
  return { before, after };
}

describe("subscription cache", () => {
  it("serves a repeated request from cache without rendering again, on every replica", async () => {
    const fresh = await seedUser(t, t.world.tenantA, { username: "cached", nodeIds: world.nodeIds });
    const r0 = t.cp.subscriptionFeed.stats().renders;
    const first = await get(t.app, MIHOMO, undefined, fresh.token);
    expect(t.cp.subscriptionFeed.stats().renders).toBe(r0 + 1);
    const second = await get(t.app, MIHOMO, undefined, fresh.token);
    expect(second.body).toBe(first.body);
    expect(t.cp.subscriptionFeed.stats().renders).toBe(r0 + 1);
    // With Redis, the other replica finds it in the shared cache rather than rendering it again
    // (in single-process mode there is no other replica to share with).
    const rr0 = replica.cp.subscriptionFeed.stats();
    const third = await get(replica.app, MIHOMO, undefined, fresh.token);
    expect(third.body).toBe(first.body);
    const rr1 = replica.cp.subscriptionFeed.stats();
    if (t.cp.coord.kind === "redis") {
      expect(rr1.renders).toBe(rr0.renders);
      expect(rr1.sharedHits).toBe(rr0.sharedHits + 1);
    } else {
      expect(rr1.renders).toBe(rr0.renders + 1);
    }
    // A 304 renders nothing and reads no document.
    const r1 = t.cp.subscriptionFeed.stats();
    expect((await get(t.app, MIHOMO, first.headers.etag as string, fresh.token)).statusCode).toBe(304);
    expect(t.cp.subscriptionFeed.stats().renders).toBe(r1.renders);
    expect(t.cp.subscriptionFeed.stats().notModified).toBe(r1.notModified + 1);
  });

  it("is invalidated by a template change (through the templates API)", async () => {
    const template =
      "proxies: []\nproxy-groups:\n  - name: Pick-Me\n    type: select\n    proxies: ['{{PROXIES}}']\nrules:\n  - MATCH,Pick-Me\n";
    const { before, after } = await expectInvalidated(MIHOMO, async () => {
      const res = await t.call(t.world.members.admin, {
        method: "PUT",
        url: `/tenants/${t.world.tenantA}/templates/clash-meta`,
        payload: { body: template },
      });
      expect(res.statusCode).toBe(200);
    });
    expect(before.body).not.toContain("Pick-Me");
    const doc = parseYaml(after.body) as { "proxy-groups": Array<{ name: string }> };
    expect(doc["proxy-groups"].map((g) => g.name)).toEqual(["Pick-Me"]);
  });

  it("is invalidated by a remark template change", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      await t.call(t.world.members.admin, {
        method: "PUT",
        url: `/tenants/${t.world.tenantA}/templates/remark`,
        payload: { body: "{USERNAME}@{NODE}" },
      });
    });
    expect(links(after.body).map((l) => l.name)).toContain("carol@Legacy");
  });

  it("is invalidated by a node inbound change, whoever writes the row", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      const inbounds = xrayInbounds().map((i) => (i.tag === "trojan-grpc" ? { ...i, port: 2096 } : i));
      await t.cp.database.db.execute(
        sql`UPDATE nodes SET inbounds = ${JSON.stringify(inbounds)}::jsonb, updated_at = now() WHERE id = ${world.xrayNode}`,
      );
    });
    const trojan = links(after.body).find((l) => l.kind !== "wireguard" && l.protocol === "trojan");
    expect(trojan?.port).toBe(2096);
  });

  it("is invalidated by a host override change", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      const inbounds = xrayInbounds().map((i) =>
        i.tag === "vmess-ws" ? { ...i, hosts: [{ address: "cdn3.example.com", port: 443 }] } : i,
      );
      await t.cp.database.db.execute(
        sql`UPDATE nodes SET inbounds = ${JSON.stringify(inbounds)}::jsonb WHERE id = ${world.xrayNode}`,
      );
    });
    expect(links(after.body).map((l) => l.address)).toContain("cdn3.example.com");
  });

  it("is invalidated when an agent reports a new WireGuard key, not by peer-count updates", async () => {
    const before = await get(t.app, V2RAYN);
    const etag = before.headers.etag as string;
    await t.cp.database.db.execute(
      sql`UPDATE node_health SET wireguard_interfaces = jsonb_set(wireguard_interfaces, '{0,peer_count}', '17'::jsonb),
            last_seen_at = now() WHERE node_id = ${world.xrayNode}`,
    );
    expect((await get(t.app, V2RAYN, etag)).statusCode).toBe(304);
    const key = "kP1c2ZgbYCSmgRhLqJDPbQmYSm0uwX6X0UNRIPbAbkk=";
    await t.cp.database.db.execute(
      sql`UPDATE node_health SET wireguard_interfaces = jsonb_set(wireguard_interfaces, '{0,public_key}', ${JSON.stringify(key)}::jsonb)
          WHERE node_id = ${world.xrayNode}`,
    );
    const after = await get(t.app, V2RAYN, etag);
    expect(after.statusCode).toBe(200);
    const wg = links(after.body).find((l) => l.kind === "wireguard");
    expect(wg && "serverPublicKey" in wg ? wg.serverPublicKey : null).toBe(key);
  });

  it("is invalidated by a credential rotation", async () => {
    const { before, after } = await expectInvalidated(V2RAYN, () => rotateCredentials(t, user));
    const uuid = (body: string) => links(body).find((l) => l.kind !== "wireguard" && l.protocol === "vless");
    const b = uuid(before.body);
    const a = uuid(after.body);
    expect(b && a && "uuid" in a && "uuid" in b && a.uuid !== b.uuid).toBe(true);
  });

  it("is invalidated by a subscription change (state, with its revision)", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      await t.cp.database.db.execute(
        sql`UPDATE subscriptions SET state = 'disabled', revision = revision + 1 WHERE id = ${user.subscriptionId}`,
      );
    });
    expect(links(after.body).map((l) => l.name)).toEqual(["Disabled"]);
    await t.cp.database.db.execute(
      sql`UPDATE subscriptions SET state = 'active', revision = revision + 1 WHERE id = ${user.subscriptionId}`,
    );
  });

  it("is invalidated by a node assignment change and by a user's engines override", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      await t.cp.database.db.execute(
        sql`DELETE FROM node_assignments WHERE subscription_id = ${user.subscriptionId} AND node_id = ${world.v2rayNode}`,
      );
    });
    expect(links(after.body).map((l) => l.address)).not.toContain("203.0.113.10");
    const { after: xrayOnly } = await expectInvalidated(V2RAYN, async () => {
      await t.cp.database.db.execute(
        sql`UPDATE users SET engines = ARRAY['xray'], updated_at = now() WHERE id = ${user.userId}`,
      );
    });
    expect(links(xrayOnly.body).some((l) => l.kind === "wireguard")).toBe(false);
  });

  it("is invalidated by a deleted node", async () => {
    const { after } = await expectInvalidated(V2RAYN, async () => {
      await t.cp.database.db.execute(sql`DELETE FROM nodes WHERE id = ${world.xrayNode}`);
    });
    expect(links(after.body).map((l) => l.name)).toEqual(["No servers available"]);
  });
});
