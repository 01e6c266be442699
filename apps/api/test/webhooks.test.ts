import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { verifySignature } from "@vpnpanel/control";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, createTestApi, type TestApi } from "../../../test/support/api";

// Webhooks end to end: a real HTTP receiver on 127.0.0.1 (allowed here by WEBHOOK_ALLOW_PRIVATE and
// WEBHOOK_ALLOW_HTTP), the outbox fan-out and the delivery run as the scheduler runs them, and the
// manual clock drives the retry schedule.

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let t: TestApi;
let receiver: Server;
let base: string;
const received: Received[] = [];
let respond: (path: string) => number = () => 200;
let admin: Account;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body });
      res.statusCode = respond(req.url ?? "");
      res.end("ok");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  t = await createTestApi({
    env: {
      WEBHOOK_ALLOW_PRIVATE: "true",
      WEBHOOK_ALLOW_HTTP: "true",
      WEBHOOK_MAX_ATTEMPTS: "3",
      WEBHOOK_BACKOFF_BASE_SECONDS: "10",
      WEBHOOK_BACKOFF_MAX_SECONDS: "15",
    },
  });
  admin = t.world.members.admin;
  await drain(); // start the consumer after the seed's events
});
afterAll(async () => {
  await t?.close();
  await new Promise((r) => receiver?.close(r));
});

/**
 * Runs fan-out and delivery until `done` holds. On PostgreSQL the outbox consumer only sees events
 * older than every running transaction in the cluster, so a busy shared server can delay it a little.
 */
async function drain(done: () => boolean = () => true, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  do {
    await t.cp.webhookDelivery.fanOut();
    await t.cp.webhookDelivery.deliverDue();
    if (done()) return;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < until);
  throw new Error("webhook deliveries did not arrive in time");
}

const endpoint = async (payload: Record<string, unknown>, who: Account = admin) => {
  const r = await t.call(who, { method: "POST", url: "/webhooks", payload });
  if (r.statusCode !== 201) throw new Error(r.body);
  return r.json();
};
const at = (path: string) => received.filter((r) => r.path === path);

describe("webhooks", () => {
  it("signs each event for the tenant's endpoints; the secret is shown only at creation", async () => {
    const ep = await endpoint({ url: `${base}/all`, description: "CRM" });
    expect(ep.secret).toMatch(/^whsec_/);
    const read = await t.call(admin, { method: "GET", url: `/webhooks/${ep.id}` });
    expect(read.json().secret).toBeUndefined();
    const onlyExpired = await endpoint({ url: `${base}/expired`, events: ["user.expired", "user.deleted"] });
    await endpoint({ url: `${base}/tenant-b` }, t.world.ownerB);

    const u = await t.call(admin, { method: "POST", url: "/users", payload: { username: "hooked" } });
    await t.call(admin, { method: "DELETE", url: `/users/${u.json().id}` });
    await drain(() => at("/all").length >= 2 && at("/expired").length >= 1);

    const [created, deleted] = at("/all");
    const body = JSON.parse(created!.body);
    expect(body).toMatchObject({
      event: "user.created",
      tenant_id: t.world.tenantA,
      data: {
        username: "hooked",
        user_id: u.json().id,
        subscription_id: u.json().subscription.id,
        state: "active",
      },
    });
    expect(created!.headers["x-vpnpanel-event"]).toBe("user.created");
    expect(created!.headers["x-vpnpanel-event-id"]).toBe(body.id);
    const now = Math.floor(t.clock.now().getTime() / 1000);
    expect(
      verifySignature(ep.secret, String(created!.headers["x-vpnpanel-signature"]), created!.body, now),
    ).toBe(true);
    expect(
      verifySignature(
        onlyExpired.secret,
        String(created!.headers["x-vpnpanel-signature"]),
        created!.body,
        now,
      ),
    ).toBe(false);
    expect(JSON.parse(deleted!.body)).toMatchObject({
      event: "user.deleted",
      data: { username: "hooked", state: "deleted" },
    });
    expect(at("/expired").map((r) => JSON.parse(r.body).event)).toEqual(["user.deleted"]);
    // Tenant B's endpoint hears nothing of tenant A.
    expect(at("/tenant-b")).toEqual([]);

    const log = await t.call(admin, { method: "GET", url: `/webhooks/${ep.id}/deliveries` });
    expect(log.json().items.map((d: { event: string; status: string }) => [d.event, d.status])).toEqual([
      ["user.deleted", "delivered"],
      ["user.created", "delivered"],
    ]);
  });

  it("retries a failing endpoint with exponential backoff, then gives up; the log shows every attempt", async () => {
    const ep = await endpoint({ url: `${base}/flaky`, events: ["user.created"] });
    let calls = 0;
    respond = (path) => (path === "/flaky" && ++calls < 3 ? 503 : 200);
    await t.call(admin, { method: "POST", url: "/users", payload: { username: "retry-me" } });
    await drain(() => at("/flaky").length === 1);
    const log = async () =>
      (await t.call(admin, { method: "GET", url: `/webhooks/${ep.id}/deliveries` })).json().items[0];
    const first = await log();
    expect(first).toMatchObject({ status: "pending", attempts: 1, last_status_code: 503 });
    expect(new Date(first.next_attempt_at).getTime() - new Date(first.last_attempt_at).getTime()).toBe(
      10_000,
    );

    t.clock.advance(9_000);
    await drain();
    expect(at("/flaky")).toHaveLength(1); // not yet due
    t.clock.advance(1_000);
    await drain(() => at("/flaky").length === 2);
    const second = await log();
    expect(second).toMatchObject({ status: "pending", attempts: 2 });
    // 10 s doubled to 20 s, capped at WEBHOOK_BACKOFF_MAX_SECONDS = 15.
    expect(new Date(second.next_attempt_at).getTime() - new Date(second.last_attempt_at).getTime()).toBe(
      15_000,
    );
    t.clock.advance(15_000);
    await drain(() => at("/flaky").length === 3);
    expect(await log()).toMatchObject({
      status: "delivered",
      attempts: 3,
      last_status_code: 200,
      next_attempt_at: null,
    });

    const dead = await endpoint({ url: `${base}/dead`, events: ["user.created"] });
    respond = (path) => (path === "/dead" ? 500 : 200);
    await t.call(admin, { method: "POST", url: "/users", payload: { username: "never-heard" } });
    await drain(() => at("/dead").length === 1);
    for (const wait of [10_000, 15_000]) {
      t.clock.advance(wait);
      const n = at("/dead").length;
      await drain(() => at("/dead").length === n + 1);
    }
    const failed = await t.call(admin, {
      method: "GET",
      url: `/webhooks/${dead.id}/deliveries?status=failed`,
    });
    expect(failed.json().items[0]).toMatchObject({
      status: "failed",
      attempts: 3,
      last_error: "HTTP 500: ok",
    });
    t.clock.advance(60_000);
    await drain();
    expect(at("/dead")).toHaveLength(3);
    respond = () => 200;
  });

  it("a rotated secret signs the next deliveries; a disabled endpoint gets none", async () => {
    const ep = await endpoint({ url: `${base}/rotating`, events: ["user.created"] });
    const rotated = await t.call(admin, {
      method: "PATCH",
      url: `/webhooks/${ep.id}`,
      payload: { rotate_secret: true },
    });
    expect(rotated.json().secret).not.toBe(ep.secret);
    await t.call(admin, { method: "POST", url: "/users", payload: { username: "after-rotation" } });
    await drain(() => at("/rotating").length === 1);
    const r = at("/rotating")[0]!;
    const now = Math.floor(t.clock.now().getTime() / 1000);
    expect(
      verifySignature(rotated.json().secret, String(r.headers["x-vpnpanel-signature"]), r.body, now),
    ).toBe(true);
    expect(verifySignature(ep.secret, String(r.headers["x-vpnpanel-signature"]), r.body, now)).toBe(false);

    await t.call(admin, { method: "PATCH", url: `/webhooks/${ep.id}`, payload: { enabled: false } });
    await t.call(admin, { method: "POST", url: "/users", payload: { username: "unheard" } });
    await drain(() => at("/all").some((x) => x.body.includes("unheard")));
    expect(at("/rotating")).toHaveLength(1);
  });

  it("validates the endpoint and names the field; only members with webhooks:write may change it", async () => {
    const bad = await t.call(admin, {
      method: "POST",
      url: "/webhooks",
      payload: { url: `${base}/x`, events: ["user.nope"] },
    });
    expect(bad.json().error.field).toBe("events.0");
    const nonsense = await t.call(admin, {
      method: "POST",
      url: "/webhooks",
      payload: { url: "not a url at all" },
    });
    expect(nonsense.json().error.field).toBe("url");
    const op = await t.call(t.world.members.operator, {
      method: "POST",
      url: "/webhooks",
      payload: { url: `${base}/x` },
    });
    expect(op.statusCode).toBe(403);
  });
});

describe("webhook URL policy (defaults)", () => {
  let strict: TestApi;
  beforeAll(async () => {
    strict = await createTestApi();
  });
  afterAll(async () => {
    await strict?.close();
  });

  it("requires https and a public address unless configuration allows otherwise", async () => {
    const who = strict.world.members.admin;
    for (const url of [
      "http://hooks.example.com/x",
      "https://127.0.0.1/x",
      "https://10.1.2.3/x",
      "https://169.254.169.254/latest/meta-data",
      "https://[::1]/x",
      "https://localhost/x",
      "https://user:pw@hooks.example.com/x",
      `https://no-such-host-${Date.now()}.invalid/x`,
    ]) {
      const r = await strict.call(who, { method: "POST", url: "/webhooks", payload: { url } });
      expect(r.statusCode, url).toBe(400);
      expect(r.json().error.field, url).toBe("url");
    }
  });
});
