import { queryRows } from "@vpnpanel/db";
import { createSchedulerRole, type Scheduler } from "@vpnpanel/scheduler";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, createTestApi, type TestApi } from "../../../test/support/api";

// Time-driven lifecycle through the real scheduler and API: the test moves the manual clock and
// ticks; nothing sleeps.

let t: TestApi;
let s: Scheduler;
let admin: Account;
let signedInAt = 0;
const DAY = 86_400;

beforeAll(async () => {
  t = await createTestApi({ env: { JWT_KEY_ROTATION_HOURS: "24" } });
  s = createSchedulerRole(t.cp);
});
afterAll(async () => {
  await s?.stop();
  await t?.close();
});

/** Access tokens expire on the test clock too: sign in again once it has moved on. */
async function as(): Promise<Account> {
  if (t.clock.now().getTime() - signedInAt > 5 * 60_000) {
    admin = await t.login(t.world.members.admin.email);
    signedInAt = t.clock.now().getTime();
  }
  return admin;
}
const call = async (o: Parameters<TestApi["call"]>[1]) => t.call(await as(), o);

const plan = async (payload: Record<string, unknown>) => {
  const r = await call({ method: "POST", url: "/plans", payload });
  if (r.statusCode !== 201) throw new Error(r.body);
  return r.json().id as string;
};
const user = async (payload: Record<string, unknown>) => {
  const r = await call({ method: "POST", url: "/users", payload });
  if (r.statusCode !== 201) throw new Error(r.body);
  return r.json();
};
const get = async (id: string) => (await call({ method: "GET", url: `/users/${id}` })).json();
const topics = async (subscriptionId: string) =>
  (
    await queryRows<{ topic: string }>(
      t.cp.database.db,
      sql`SELECT topic FROM outbox WHERE subject_id = ${subscriptionId} ORDER BY id`,
    )
  ).map((r) => r.topic);
/** Moves time and lets every due job run once. */
const advance = async (ms: number) => {
  t.clock.advance(ms);
  await s.tick();
};
const setUsage = (subscriptionId: string, used: number) =>
  t.cp.database.db.execute(
    sql`UPDATE subscription_usage SET used_bytes = ${used}, lifetime_bytes = lifetime_bytes + ${used} WHERE subscription_id = ${subscriptionId}`,
  );

describe("scheduler lifecycle jobs", () => {
  it("expires a subscription at the first run after its end (runs every second), once", async () => {
    await s.tick();
    const u = await user({ username: "short", duration_seconds: 60 });
    await advance(59_000);
    expect((await get(u.id)).subscription.state).toBe("active");
    await advance(1_500);
    const after = await get(u.id);
    expect(after.subscription).toMatchObject({ state: "expired", state_reason: "expired" });
    // The state changed within the job's 1 s period of the end.
    const late =
      new Date(after.subscription.state_changed_at).getTime() -
      new Date(after.subscription.expires_at).getTime();
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThanOrEqual(2000);
    await advance(5_000);
    expect(await topics(u.subscription.id)).toEqual(["user.created", "user.expired"]);
    const owner = await t.login(t.world.members.owner.email);
    const audit = await t.call(owner, { method: "GET", url: `/audit?target_id=${u.subscription.id}` });
    expect(audit.json().items[0]).toMatchObject({ action: "subscription.expire", actor_type: "system" });

    // Renewal brings it back; the next expiry is counted from now.
    const renewed = await call({
      method: "POST",
      url: `/users/${u.id}/subscription/renew`,
      payload: {},
    });
    expect(renewed.json().subscription.state).toBe("active");
    expect(new Date(renewed.json().subscription.expires_at).getTime()).toBe(t.clock.now().getTime() + 60_000);
  });

  it("expires thousands due at the same instant in one run, each once, in batches on two connections", async () => {
    const users = Array.from({ length: 2500 }, (_, i) => ({ username: `mass-${i}` }));
    const r = await call({ method: "POST", url: "/users/bulk", payload: { duration_seconds: 30, users } });
    expect(r.statusCode).toBe(201);
    await advance(31_000);
    const [counts] = await queryRows<{ expired: unknown; events: unknown; audits: unknown }>(
      t.cp.database.db,
      sql`SELECT
            (SELECT count(*) FROM subscriptions s JOIN users u ON u.id = s.user_id
              WHERE u.username LIKE 'mass-%' AND s.state = 'expired') AS expired,
            (SELECT count(*) FROM outbox o JOIN subscriptions s ON s.id = o.subject_id JOIN users u ON u.id = s.user_id
              WHERE u.username LIKE 'mass-%' AND o.topic = 'user.expired') AS events,
            (SELECT count(*) FROM audit_log a JOIN subscriptions s ON s.id = a.target_id JOIN users u ON u.id = s.user_id
              WHERE u.username LIKE 'mass-%' AND a.action = 'subscription.expire') AS audits`,
    );
    expect([Number(counts!.expired), Number(counts!.events), Number(counts!.audits)]).toEqual([
      2500, 2500, 2500,
    ]);
  });

  it("starts a held subscription at its deadline: the clock starts at the deadline, not when the job ran", async () => {
    const held = await plan({
      name: "Held",
      duration_seconds: 10 * DAY,
      hold_mode: "first_connection",
      max_hold_seconds: DAY,
    });
    const u = await user({ username: "held", plan_id: held });
    expect(u.subscription).toMatchObject({ state: "on_hold", started_at: null, expires_at: null });
    const deadline = new Date(u.subscription.hold_deadline).getTime();
    await advance(DAY * 1000 - 10_000);
    expect((await get(u.id)).subscription.state).toBe("on_hold");
    await advance(60_000); // the job runs 50 s late
    const started = (await get(u.id)).subscription;
    expect(started.state).toBe("active");
    expect(new Date(started.started_at).getTime()).toBe(deadline);
    expect(new Date(started.expires_at).getTime()).toBe(deadline + 10 * DAY * 1000);
    expect(await topics(u.subscription.id)).toEqual(["user.created", "user.activated"]);

    const dated = await plan({
      name: "Dated",
      duration_seconds: DAY,
      hold_mode: "date",
      hold_start_at: new Date(t.clock.now().getTime() + 3_600_000).toISOString(),
    });
    const d = await user({ username: "dated", plan_id: dated });
    await advance(3_600_000 + 5_000);
    expect((await get(d.id)).subscription).toMatchObject({
      state: "active",
      state_reason: "start date reached",
    });
  });

  it("resets period usage at each boundary, once after downtime, and lifts the limit", async () => {
    const daily = await plan({
      name: "Daily 1k",
      quota_bytes: 1000,
      duration_seconds: 30 * DAY,
      reset_strategy: "day",
    });
    const u = await user({ username: "daily", plan_id: daily });
    const first = new Date(u.subscription.next_reset_at).getTime();
    expect(first).toBe(new Date(u.subscription.started_at).getTime() + DAY * 1000);
    await setUsage(u.subscription.id, 1000);
    const limited = await call({
      method: "POST",
      url: `/users/${u.id}/subscription/quota`,
      payload: { add_bytes: 0 },
    });
    expect(limited.json().subscription.state).toBe("limited");

    await advance(first - t.clock.now().getTime() + 3 * DAY * 1000 + 1000); // three boundaries passed while down
    const after = (await get(u.id)).subscription;
    expect(after).toMatchObject({ state: "active", used_bytes: 0, lifetime_bytes: 1000 });
    expect(new Date(after.next_reset_at).getTime()).toBe(first + 4 * DAY * 1000);
    expect((await topics(u.subscription.id)).filter((x) => x === "user.reset")).toHaveLength(1);
  });

  it("switches to the next plan when the plan runs out: at its end (from that instant) or when its data is spent", async () => {
    const monthly = await plan({ name: "Next month", quota_bytes: 5000, duration_seconds: 30 * DAY });
    const trial = await plan({
      name: "Trial",
      quota_bytes: 100,
      duration_seconds: 60,
      next_plan_id: monthly,
    });
    const u = await user({ username: "trial", plan_id: trial });
    const end = new Date(u.subscription.expires_at).getTime();
    await advance(61_000);
    const switched = (await get(u.id)).subscription;
    expect(switched).toMatchObject({
      plan_id: monthly,
      state: "active",
      quota_bytes: 5000,
      next_plan_id: null,
    });
    expect(new Date(switched.started_at).getTime()).toBe(end);
    expect(new Date(switched.expires_at).getTime()).toBe(end + 30 * DAY * 1000);
    expect(await topics(u.subscription.id)).toEqual(["user.created", "user.plan_changed"]);

    const v = await user({ username: "trial2", plan_id: trial });
    await setUsage(v.subscription.id, 100);
    await call({ method: "POST", url: `/users/${v.id}/subscription/quota`, payload: { add_bytes: 0 } });
    expect((await get(v.id)).subscription.state).toBe("limited");
    await advance(5_000);
    expect((await get(v.id)).subscription).toMatchObject({
      plan_id: monthly,
      state: "active",
      used_bytes: 0,
    });
  });

  it("rotates the JWT signing key when it is due; old tokens keep verifying", async () => {
    const kid = async () =>
      (
        await queryRows<{ kid: string }>(
          t.cp.database.db,
          sql`SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`,
        )
      )[0]!.kid;
    const before = await kid();
    await advance(25 * 3_600_000);
    const after = await kid();
    expect(after).not.toBe(before);
    // The retired key stays published until its last token has expired.
    const jwks = (await t.cp.keys.jwks()).keys.map((k) => k.kid);
    expect(jwks).toEqual(expect.arrayContaining([before, after]));
    // Not due again right away.
    await advance(60_000);
    expect(await kid()).toBe(after);
  });
});
