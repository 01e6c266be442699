import { openCredentials, type SealedCredentials } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, createTestApi, type TestApi } from "../../../test/support/api";

let t: TestApi;
let operator: Account;
let planId: string;
beforeAll(async () => {
  t = await createTestApi();
  operator = t.world.members.operator;
  const plan = await t.call(t.world.members.admin, {
    method: "POST",
    url: "/plans",
    payload: { name: "Basic", quota_bytes: 10 * 2 ** 30, duration_seconds: 30 * 86_400 },
  });
  planId = plan.json().id;
});
afterAll(async () => {
  await t?.close();
});

const createUser = async (payload: Record<string, unknown>, who: Account = operator) => {
  const r = await t.call(who, { method: "POST", url: "/users", payload });
  if (r.statusCode !== 201) throw new Error(`create failed: ${r.statusCode} ${r.body}`);
  return r.json();
};

// What was written to the outbox for a subscription (read directly: a consumer's snapshot horizon
// is cluster-wide on PostgreSQL and may lag behind other sessions' transactions).
const eventsFor = (subscriptionId: string) =>
  queryRows<{ topic: string; payload: Record<string, unknown> }>(
    t.cp.database.db,
    sql`SELECT topic, payload FROM outbox WHERE subject_id = ${subscriptionId} ORDER BY id`,
  );
const topicsFor = async (subscriptionId: string) => (await eventsFor(subscriptionId)).map((e) => e.topic);

describe("users", () => {
  it("creates a subscriber from a plan with credentials, an address and a subscription URL", async () => {
    const u = await createUser({ username: "alice", note: "paid via shop", plan_id: planId });
    expect(u).toMatchObject({
      username: "alice",
      note: "paid via shop",
      engines: null,
      tenant_id: t.world.tenantA,
    });
    expect(u.subscription).toMatchObject({
      plan_id: planId,
      state: "active",
      quota_bytes: 10 * 2 ** 30,
      used_bytes: 0,
      engines: ["xray", "wireguard"],
      revision: 1,
    });
    const expires =
      new Date(u.subscription.expires_at).getTime() - new Date(u.subscription.started_at).getTime();
    expect(expires).toBe(30 * 86_400_000);
    expect(u.subscription.subscription_url).toMatch(/^http:\/\/127\.0\.0\.1:8080\/sub\/[A-Za-z0-9_-]{32}$/);
    expect(u.credentials.xray_uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(u.credentials.wg_public_key).toHaveLength(44);
    expect(u.credentials.ipv4).toMatch(/^10\.8[0-9]\.\d+\.\d+\/32$/);

    // Secrets are sealed at rest under the contexts the node and subscription readers open them with.
    const [row] = await queryRows<Record<string, string>>(
      t.cp.database.db,
      sql`SELECT xray_uuid::text AS xray_uuid, trojan_password_enc, shadowsocks_password_enc, wg_private_key_enc,
                 wg_public_key, wg_preshared_key_enc FROM credentials WHERE user_id = ${u.id}`,
    );
    expect(row!.trojan_password_enc).toMatch(/^v1:/);
    const sealed: SealedCredentials = {
      xrayUuid: row!.xray_uuid!,
      trojanPasswordEnc: row!.trojan_password_enc!,
      shadowsocksPasswordEnc: row!.shadowsocks_password_enc!,
      wgPrivateKeyEnc: row!.wg_private_key_enc!,
      wgPublicKey: row!.wg_public_key!,
      wgPresharedKeyEnc: row!.wg_preshared_key_enc!,
    };
    const plain = openCredentials(t.cp.box, u.id, sealed);
    expect(plain.trojanPassword).toHaveLength(24);
    expect(Buffer.from(plain.shadowsocksPassword, "base64")).toHaveLength(32);
    expect(() => openCredentials(t.cp.box, "usr_someoneelse", sealed)).toThrow();

    expect(await topicsFor(u.subscription.id)).toEqual(["user.created"]);
  });

  it("creates without a plan: unlimited and never expiring unless told otherwise", async () => {
    const u = await createUser({
      username: "planless",
      expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    });
    expect(u.subscription).toMatchObject({ plan_id: null, quota_bytes: null, state: "active" });
    expect(u.subscription.expires_at).not.toBeNull();
    const zero = await createUser({ username: "zero-quota", quota_bytes: 0 });
    expect(zero.subscription.state).toBe("limited");
  });

  it("names are unique per tenant ignoring case; errors name the field", async () => {
    await createUser({ username: "Bob" });
    const dup = await t.call(operator, { method: "POST", url: "/users", payload: { username: "bob" } });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error).toMatchObject({ code: "conflict", field: "username" });
    for (const [payload, field] of [
      [{ username: "-dash" }, "username"],
      [{ username: "has space" }, "username"],
      [{ username: "x".repeat(65) }, "username"],
      [{ username: "ok", plan_id: "pln_0000000000000000000000000z" }, "plan_id"],
      [{ username: "ok", quota_bytes: -5 }, "quota_bytes"],
      [{ username: "ok", engines: ["xray", "xray"] }, "engines"],
      [{ username: "ok", extra: 1 }, "extra"],
    ] as const) {
      const r = await t.call(operator, { method: "POST", url: "/users", payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error.field, JSON.stringify(payload)).toBe(field);
    }
  });

  it("lists newest first with keyset pagination and searches by name prefix, note words and status", async () => {
    for (let i = 0; i < 7; i++)
      await createUser({ username: `page-${i}`, note: i % 2 ? "vip reseller" : null });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await t.call(operator, {
        method: "GET",
        url: `/users?username=PAGE-&limit=3${cursor ? `&cursor=${cursor}` : ""}`,
      });
      expect(r.statusCode).toBe(200);
      seen.push(...r.json().items.map((u: { username: string }) => u.username));
      cursor = r.json().next_cursor;
    } while (cursor);
    // A name search pages alphabetically (any case).
    expect(seen).toEqual(["page-0", "page-1", "page-2", "page-3", "page-4", "page-5", "page-6"]);
    const newest = await t.call(operator, { method: "GET", url: "/users?limit=2" });
    expect(newest.json().items.map((u: { username: string }) => u.username)).toEqual(["page-6", "page-5"]);

    const vip = await t.call(operator, { method: "GET", url: "/users?note=Reseller%20VIP" });
    expect(vip.json().items.map((u: { username: string }) => u.username)).toEqual([
      "page-5",
      "page-3",
      "page-1",
    ]);

    const limited = await t.call(operator, { method: "GET", url: "/users?status=limited" });
    expect(limited.json().items.map((u: { username: string }) => u.username)).toEqual(["zero-quota"]);

    // A name prefix with LIKE wildcards matches them literally.
    const literal = await t.call(operator, { method: "GET", url: "/users?username=page_" });
    expect(literal.json().items).toEqual([]);

    const bad = await t.call(operator, { method: "GET", url: "/users?status=gone" });
    expect(bad.json().error.field).toBe("status");
    const badCursor = await t.call(operator, { method: "GET", url: "/users?cursor=bm9wZQ" });
    expect(badCursor.json().error.field).toBe("cursor");
  });

  it("renames (bumping the revision) and edits the note, emitting user.updated", async () => {
    const u = await createUser({ username: "carol" });
    const r = await t.call(operator, {
      method: "PATCH",
      url: `/users/${u.id}`,
      payload: { username: "Carol2", note: "x" },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ username: "Carol2", note: "x" });
    expect(r.json().subscription.revision).toBe(2);
    expect(await topicsFor(u.subscription.id)).toEqual(["user.created", "user.updated"]);
    await createUser({ username: "dave" });
    const clash = await t.call(operator, {
      method: "PATCH",
      url: `/users/${u.id}`,
      payload: { username: "DAVE" },
    });
    expect(clash.statusCode).toBe(409);
    expect(clash.json().error.field).toBe("username");
  });

  it("sets the engine override within the plan's engines", async () => {
    const u = await createUser({ username: "erin", plan_id: planId });
    const r = await t.call(operator, {
      method: "POST",
      url: `/users/${u.id}/engines`,
      payload: { engines: ["wireguard"] },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().engines).toEqual(["wireguard"]);
    expect(r.json().subscription.engines).toEqual(["wireguard"]);
    const back = await t.call(operator, {
      method: "POST",
      url: `/users/${u.id}/engines`,
      payload: { engines: null },
    });
    expect(back.json().subscription.engines).toEqual(["xray", "wireguard"]);
    expect(await topicsFor(u.subscription.id)).toEqual([
      "user.created",
      "user.engines_changed",
      "user.engines_changed",
    ]);

    const wgPlan = await t.call(t.world.members.admin, {
      method: "POST",
      url: "/plans",
      payload: { name: "WG only", engines: ["wireguard"] },
    });
    const w = await createUser({ username: "wg-only", plan_id: wgPlan.json().id });
    const empty = await t.call(operator, {
      method: "POST",
      url: `/users/${w.id}/engines`,
      payload: { engines: ["xray"] },
    });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.field).toBe("engines");
  });

  it("rotates credentials: new secrets and key, same address, old key in the event", async () => {
    const u = await createUser({ username: "frank" });
    const r = await t.call(operator, {
      method: "POST",
      url: `/users/${u.id}/credentials/rotate`,
      payload: {},
    });
    expect(r.statusCode).toBe(200);
    const after = r.json();
    expect(after.credentials.wg_public_key).not.toBe(u.credentials.wg_public_key);
    expect(after.credentials.xray_uuid).not.toBe(u.credentials.xray_uuid);
    expect(after.credentials.ipv4).toBe(u.credentials.ipv4);
    const only = await t.call(operator, {
      method: "POST",
      url: `/users/${u.id}/credentials/rotate`,
      payload: { kinds: ["xray"] },
    });
    expect(only.json().credentials.wg_public_key).toBe(after.credentials.wg_public_key);
    expect(only.json().credentials.xray_uuid).not.toBe(after.credentials.xray_uuid);
    const events = (await eventsFor(u.subscription.id)).filter((e) => e.topic === "user.credentials_rotated");
    expect(events[0]!.payload).toMatchObject({
      prev_wg_public_key: u.credentials.wg_public_key,
      wg_public_key: after.credentials.wg_public_key,
    });
  });

  it("deletes a user with its subscription; its address goes back to the pool and is reused", async () => {
    const u = await createUser({ username: "gone" });
    expect((await t.call(operator, { method: "DELETE", url: `/users/${u.id}` })).statusCode).toBe(204);
    expect((await t.call(operator, { method: "GET", url: `/users/${u.id}` })).statusCode).toBe(404);
    const next = await createUser({ username: "reuses" });
    expect(next.credentials.ipv4).toBe(u.credentials.ipv4);
    const events = await eventsFor(u.subscription.id);
    expect(events.map((e) => e.topic)).toEqual(["user.created", "user.deleted"]);
    expect(events[1]!.payload).toMatchObject({ state: "deleted", prev_state: "active", user_id: u.id });
  });

  it("another tenant's user answers 404, an auditor reads but cannot write (403)", async () => {
    const u = await createUser({ username: "private" });
    expect((await t.call(t.world.ownerB, { method: "GET", url: `/users/${u.id}` })).statusCode).toBe(404);
    expect((await t.call(t.world.ownerB, { method: "DELETE", url: `/users/${u.id}` })).statusCode).toBe(404);
    expect((await t.call(t.world.members.auditor, { method: "GET", url: `/users/${u.id}` })).statusCode).toBe(
      200,
    );
    expect(
      (
        await t.call(t.world.members.auditor, {
          method: "PATCH",
          url: `/users/${u.id}`,
          payload: { note: "x" },
        })
      ).statusCode,
    ).toBe(403);
  });
});

describe("bulk create", () => {
  it("creates 1,000 users in one request, audited as one action with the count", async () => {
    const users = Array.from({ length: 1000 }, (_, i) => ({
      username: `bulk-${i}`,
      ...(i === 3 ? { note: "n" } : {}),
    }));
    const r = await t.call(operator, {
      method: "POST",
      url: "/users/bulk",
      payload: { plan_id: planId, users },
    });
    expect(r.statusCode).toBe(201);
    expect(r.json().created).toBe(1000);
    const items = r.json().items as Array<{ id: string; subscription_url: string }>;
    expect(new Set(items.map((i) => i.subscription_url)).size).toBe(1000);
    const [counts] = await queryRows<Record<string, unknown>>(
      t.cp.database.db,
      sql`SELECT count(DISTINCT a."offset")::int AS addresses, count(DISTINCT c.wg_public_key)::int AS keys,
                 count(DISTINCT s.id)::int AS subs
          FROM users u JOIN ip_allocations a ON a.user_id = u.id JOIN credentials c ON c.user_id = u.id
          JOIN subscriptions s ON s.user_id = u.id WHERE u.username LIKE 'bulk-%'`,
    );
    expect(counts).toEqual({ addresses: 1000, keys: 1000, subs: 1000 });
    const audit = await t.call(t.world.members.owner, {
      method: "GET",
      url: "/audit?action=user.bulk_create",
    });
    expect(audit.json().items).toHaveLength(1);
    expect(audit.json().items[0].summary).toMatchObject({ count: 1000, plan_id: planId });
  });

  it("is all or nothing and names the offending item", async () => {
    const dupInBatch = await t.call(operator, {
      method: "POST",
      url: "/users/bulk",
      payload: { users: [{ username: "b-new-1" }, { username: "B-NEW-1" }] },
    });
    expect(dupInBatch.statusCode).toBe(400);
    expect(dupInBatch.json().error.field).toBe("users[1].username");
    const bad = await t.call(operator, {
      method: "POST",
      url: "/users/bulk",
      payload: { users: [{ username: "fine" }, { username: "not fine" }] },
    });
    expect(bad.json().error.field).toBe("users[1].username");
    const taken = await t.call(operator, {
      method: "POST",
      url: "/users/bulk",
      payload: { users: [{ username: "brand-new" }, { username: "bulk-7" }] },
    });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().error.message).toContain("bulk-7");
    const none = await t.call(operator, { method: "GET", url: "/users?username=brand-new" });
    expect(none.json().items).toEqual([]);
    const tooMany = await t.call(operator, {
      method: "POST",
      url: "/users/bulk",
      payload: { users: Array.from({ length: 5001 }, (_, i) => ({ username: `x${i}` })) },
    });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().error.field).toBe("users");
  });
});
