import { hashSubscriptionToken } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, createTestApi, type TestApi } from "../../../test/support/api";

let t: TestApi;
let op: Account;
let planId: string;
const DAY = 86_400;

beforeAll(async () => {
  t = await createTestApi();
  op = t.world.members.operator;
  const p = await t.call(t.world.members.admin, {
    method: "POST",
    url: "/plans",
    payload: { name: "Std", quota_bytes: 1000, duration_seconds: 30 * DAY },
  });
  planId = p.json().id;
});
afterAll(async () => {
  await t?.close();
});

const user = async (payload: Record<string, unknown>) => {
  const r = await t.call(op, { method: "POST", url: "/users", payload });
  if (r.statusCode !== 201) throw new Error(r.body);
  return r.json();
};
const sub = (id: string, action: string, payload?: Record<string, unknown>) =>
  t.call(op, { method: "POST", url: `/users/${id}/subscription/${action}`, ...(payload ? { payload } : {}) });
const setUsage = (subscriptionId: string, used: number) =>
  t.cp.database.db.execute(
    sql`UPDATE subscription_usage SET used_bytes = ${used} WHERE subscription_id = ${subscriptionId}`,
  );
const topics = async (subscriptionId: string) =>
  (
    await queryRows<{ topic: string }>(
      t.cp.database.db,
      sql`SELECT topic FROM outbox WHERE subject_id = ${subscriptionId} ORDER BY id`,
    )
  ).map((r) => r.topic);

describe("subscription operations", () => {
  it("disable and enable; an event the state does not allow is a 409 naming the state", async () => {
    const u = await user({ username: "dis", plan_id: planId });
    const d = await sub(u.id, "disable", { reason: "chargeback" });
    expect(d.statusCode).toBe(200);
    expect(d.json().subscription).toMatchObject({
      state: "disabled",
      state_reason: "admin: chargeback",
      revision: 2,
    });
    const again = await sub(u.id, "disable");
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({ code: "conflict", field: "state" });
    expect(again.json().error.message).toContain("disabled");
    // Edits on a disabled subscription are kept, it stays disabled; enable settles to the facts.
    await setUsage(u.subscription.id, 1000);
    expect((await sub(u.id, "quota", { quota_bytes: 2000 })).json().subscription.state).toBe("disabled");
    const e = await sub(u.id, "enable");
    expect(e.json().subscription).toMatchObject({ state: "active", quota_bytes: 2000 });
    expect((await sub(u.id, "enable")).statusCode).toBe(409);
    expect(await topics(u.subscription.id)).toEqual([
      "user.created",
      "user.disabled",
      "user.quota_changed",
      "user.enabled",
    ]);
  });

  it("quota: lowering below the usage limits, adding lifts it, null is unlimited", async () => {
    const u = await user({ username: "quota", plan_id: planId });
    await setUsage(u.subscription.id, 600);
    const low = await sub(u.id, "quota", { quota_bytes: 500 });
    expect(low.json().subscription.state).toBe("limited");
    const add = await sub(u.id, "quota", { add_bytes: 200 });
    expect(add.json().subscription).toMatchObject({ state: "active", quota_bytes: 700 });
    expect((await sub(u.id, "quota", { quota_bytes: null })).json().subscription.quota_bytes).toBeNull();
    const both = await sub(u.id, "quota", { quota_bytes: 1, add_bytes: 1 });
    expect(both.statusCode).toBe(400);
    expect(await topics(u.subscription.id)).toEqual([
      "user.created",
      "user.quota_changed",
      "user.limited",
      "user.quota_changed",
      "user.quota_changed",
    ]);
  });

  it("reset usage brings a limited subscription back", async () => {
    const u = await user({ username: "reset", plan_id: planId });
    await setUsage(u.subscription.id, 1000);
    await sub(u.id, "quota", { add_bytes: 0 });
    const r = await sub(u.id, "reset");
    expect(r.json().subscription).toMatchObject({ state: "active", used_bytes: 0 });
  });

  it("renew extends from the later of now and the end, or sets an end; expired comes back", async () => {
    const u = await user({ username: "renew", plan_id: planId });
    const end = new Date(u.subscription.expires_at).getTime();
    const r = await sub(u.id, "renew", { extend_seconds: DAY });
    expect(new Date(r.json().subscription.expires_at).getTime()).toBe(end + DAY * 1000);
    // Past its end and expired by the scheduler: a renewal counts from now.
    await t.cp.database.db.execute(sql`UPDATE subscriptions
      SET expires_at = ${t.clock.now().toISOString()}::timestamptz - interval '1 day' WHERE user_id = ${u.id}`);
    await t.cp.lifecycleJobs.expireDue();
    const back = await sub(u.id, "renew", {});
    expect(back.json().subscription.state).toBe("active");
    expect(new Date(back.json().subscription.expires_at).getTime()).toBe(
      t.clock.now().getTime() + 30 * DAY * 1000,
    );
    const fixed = new Date(t.clock.now().getTime() + 5 * DAY * 1000).toISOString();
    expect((await sub(u.id, "renew", { expires_at: fixed })).json().subscription.expires_at).toBe(fixed);
    const past = await sub(u.id, "renew", { expires_at: "2001-01-01T00:00:00Z" });
    expect(past.json().error.field).toBe("expires_at");
    const both = await sub(u.id, "renew", { expires_at: fixed, extend_seconds: 60 });
    expect(both.json().error.field).toBe("extend_seconds");
    expect(await topics(u.subscription.id)).toEqual([
      "user.created",
      "user.renewed",
      "user.expired",
      "user.renewed",
      "user.renewed",
    ]);
  });

  it("change plan copies the new terms and starts a new period now", async () => {
    const big = await t.call(t.world.members.admin, {
      method: "POST",
      url: "/plans",
      payload: { name: "Big", quota_bytes: 10_000, duration_seconds: 90 * DAY, engines: ["wireguard"] },
    });
    const u = await user({ username: "upgrade", plan_id: planId });
    await setUsage(u.subscription.id, 999);
    const r = await sub(u.id, "plan", { plan_id: big.json().id });
    expect(r.json().subscription).toMatchObject({
      plan_id: big.json().id,
      quota_bytes: 10_000,
      used_bytes: 0,
      engines: ["wireguard"],
      state: "active",
    });
    expect(new Date(r.json().subscription.expires_at).getTime()).toBe(
      t.clock.now().getTime() + 90 * DAY * 1000,
    );
    const foreign = await t.call(t.world.ownerB, {
      method: "POST",
      url: "/plans",
      payload: { name: "B plan" },
    });
    const bad = await sub(u.id, "plan", { plan_id: foreign.json().id });
    expect(bad.json().error.field).toBe("plan_id");
  });

  it("activate starts a held subscription now", async () => {
    const held = await t.call(t.world.members.admin, {
      method: "POST",
      url: "/plans",
      payload: { name: "Held", duration_seconds: DAY, hold_mode: "first_connection" },
    });
    const u = await user({ username: "hold", plan_id: held.json().id });
    expect(u.subscription.state).toBe("on_hold");
    const r = await sub(u.id, "activate");
    expect(r.json().subscription).toMatchObject({ state: "active", hold_deadline: null });
    expect(new Date(r.json().subscription.started_at).getTime()).toBe(t.clock.now().getTime());
    expect((await sub(u.id, "activate")).statusCode).toBe(409);
  });

  it("reissuing the token revokes the old subscription URL", async () => {
    const u = await user({ username: "token" });
    const oldToken = u.subscription.subscription_url.split("/sub/")[1];
    const r = await sub(u.id, "token");
    const newToken = r.json().subscription.subscription_url.split("/sub/")[1];
    expect(newToken).not.toBe(oldToken);
    const [row] = await queryRows<{ token_hash: string }>(
      t.cp.database.db,
      sql`SELECT token_hash FROM subscriptions WHERE id = ${u.subscription.id}`,
    );
    expect(row!.token_hash).toBe(hashSubscriptionToken(newToken));
    expect((await t.app.inject({ method: "GET", url: `/sub/${oldToken}` })).statusCode).toBe(404);
    expect(await topics(u.subscription.id)).toEqual(["user.created", "user.token_reissued"]);
  });

  it("the auditor cannot change a subscription (403); another tenant's is not found (404)", async () => {
    const u = await user({ username: "guarded" });
    const audit = await t.call(t.world.members.auditor, {
      method: "POST",
      url: `/users/${u.id}/subscription/disable`,
    });
    expect(audit.statusCode).toBe(403);
    const other = await t.call(t.world.ownerB, {
      method: "POST",
      url: `/users/${u.id}/subscription/disable`,
    });
    expect(other.statusCode).toBe(404);
  });
});

describe("bulk subscription operations", () => {
  it("extends every match in one statement, audited once with the count; expired ones come back", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await user({ username: `ext-${i}`, plan_id: planId, note: "promo" })).id);
    await user({ username: "ext-other", plan_id: planId });
    await user({ username: "ext-forever" }); // no end: not extended
    const before = (await t.call(op, { method: "GET", url: `/users/${ids[0]}` })).json().subscription;
    // Two of them expired.
    await t.cp.database.db.execute(sql`UPDATE subscriptions SET expires_at = ${t.clock.now().toISOString()}::timestamptz - interval '1 hour'
      WHERE user_id = ANY(${sql.param(ids.slice(0, 2))}::text[])`);
    await t.cp.lifecycleJobs.expireDue();
    const r = await t.call(op, {
      method: "POST",
      url: "/users/bulk/extend",
      payload: { filter: { username: "ext-", note: "promo" }, extend_seconds: 7 * DAY },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ updated: 5 });
    const list = await t.call(op, { method: "GET", url: "/users?username=ext-&limit=50" });
    const byName = new Map(
      list.json().items.map((u: { username: string; subscription: unknown }) => [u.username, u.subscription]),
    );
    expect(byName.get("ext-0")).toMatchObject({ state: "active" });
    expect(new Date((byName.get("ext-4") as { expires_at: string }).expires_at).getTime()).toBe(
      new Date(before.expires_at).getTime() + 7 * DAY * 1000,
    );
    expect(byName.get("ext-other")).toMatchObject({ revision: 1 });
    const owner = t.world.members.owner;
    const audit = await t.call(owner, { method: "GET", url: "/audit?action=subscription.bulk_extend" });
    expect(audit.json().items).toHaveLength(1);
    expect(audit.json().items[0].summary).toMatchObject({
      count: 5,
      extend_seconds: 7 * DAY,
      filter: { username: "ext-", note: "promo" },
    });
  });

  it("adds quota to every limited match and lifts the limit", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await user({ username: `aq-${i}`, plan_id: planId })).id);
    await t.cp.database.db.execute(sql`UPDATE subscription_usage SET used_bytes = 1000
      WHERE subscription_id IN (SELECT id FROM subscriptions WHERE user_id = ANY(${sql.param(ids)}::text[]))`);
    const lim = await t.call(op, {
      method: "POST",
      url: "/users/bulk/add-quota",
      payload: { filter: { user_ids: ids }, add_bytes: 0 },
    });
    expect(lim.statusCode).toBe(400); // add_bytes must be positive
    for (const id of ids) await sub(id, "quota", { add_bytes: 0 }); // → limited
    const r = await t.call(op, {
      method: "POST",
      url: "/users/bulk/add-quota",
      payload: { filter: { status: "limited", user_ids: ids }, add_bytes: 500 },
    });
    expect(r.json()).toEqual({ updated: 3 });
    const after = await t.call(op, { method: "GET", url: "/users?username=aq-" });
    for (const u of after.json().items)
      expect(u.subscription).toMatchObject({ state: "active", quota_bytes: 1500 });
  });

  it("validates the filter and names the field", async () => {
    const r = await t.call(op, {
      method: "POST",
      url: "/users/bulk/extend",
      payload: { filter: { status: "nope" }, extend_seconds: 60 },
    });
    expect(r.json().error.field).toBe("filter.status");
    const n = await t.call(op, {
      method: "POST",
      url: "/users/bulk/extend",
      payload: { filter: {}, extend_seconds: 0 },
    });
    expect(n.json().error.field).toBe("extend_seconds");
    const auditor = await t.call(t.world.members.auditor, {
      method: "POST",
      url: "/users/bulk/extend",
      payload: { filter: {}, extend_seconds: 60 },
    });
    expect(auditor.statusCode).toBe(403);
  });
});
