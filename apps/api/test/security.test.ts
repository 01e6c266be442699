import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, PASSWORD, type TestApi } from "../../../test/support/api";

describe("login rate limit", () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi({
      env: { LOGIN_RATE_LIMIT_PER_ACCOUNT: "3", LOGIN_RATE_LIMIT_PER_IP: "5" },
      seed: false,
    });
    const { systemActor } = await import("@vpnpanel/control");
    await t.cp.admins.create(systemActor(), { email: "operator-a@test.local", password: PASSWORD });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("per account: the 4th failed attempt in the window is 429 with Retry-After", async () => {
    const attempt = () =>
      t.app.inject({
        method: "POST",
        url: "/auth/login",
        payload: { email: "operator-a@test.local", password: "wrong password!!" },
      });
    for (let i = 0; i < 3; i++) expect((await attempt()).statusCode).toBe(401);
    const limited = await attempt();
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe("rate_limited");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
  });

  it("per IP: many accounts from one address are limited too", async () => {
    const res = [];
    for (const email of ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]) {
      res.push(
        (
          await t.app.inject({
            method: "POST",
            url: "/auth/login",
            remoteAddress: "10.9.9.9",
            payload: { email, password: PASSWORD },
          })
        ).statusCode,
      );
    }
    expect(res).toEqual([401, 401, 401, 401]);
    const sixth = await t.app.inject({
      method: "POST",
      url: "/auth/login",
      remoteAddress: "10.9.9.9",
      payload: { email: "e@x.io", password: PASSWORD },
    });
    expect([401, 429]).toContain(sixth.statusCode);
    const seventh = await t.app.inject({
      method: "POST",
      url: "/auth/login",
      remoteAddress: "10.9.9.9",
      payload: { email: "f@x.io", password: PASSWORD },
    });
    expect(seventh.statusCode).toBe(429);
  });
});

describe("admin IP allow-list", () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi({ env: { ADMIN_IP_ALLOWLIST: "127.0.0.0/8,::1/128,192.168.10.0/24" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("allows listed addresses and refuses others with 403 on privileged routes", async () => {
    const inside = await t.call(t.world.platform, {
      method: "GET",
      url: "/tenants",
      remoteAddress: "192.168.10.7",
    });
    expect(inside.statusCode).toBe(200);
    const outside = await t.call(t.world.platform, {
      method: "GET",
      url: "/tenants",
      remoteAddress: "203.0.113.5",
    });
    expect(outside.statusCode).toBe(403);
    expect(outside.json().error.code).toBe("forbidden");
    const login = await t.app.inject({
      method: "POST",
      url: "/auth/login",
      remoteAddress: "203.0.113.5",
      payload: { email: "platform@test.local", password: PASSWORD },
    });
    expect(login.statusCode).toBe(403);
  });

  it("leaves public routes reachable from anywhere", async () => {
    const res = await t.app.inject({ method: "GET", url: "/health", remoteAddress: "203.0.113.5" });
    expect(res.statusCode).toBe(200);
  });
});

describe("audit log", () => {
  let t: TestApi;
  beforeAll(async () => {
    t = await createTestApi();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("every mutation writes its audit row with actor, tenant, request id and source IP", async () => {
    const res = await t.call(t.world.members.owner, {
      method: "PATCH",
      url: `/tenants/${t.world.tenantA}`,
      headers: { "x-request-id": "req-audit-1" },
      payload: { settings: { support: "t.me/help" } },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-request-id"]).toBe("req-audit-1");
    const audit = await t.call(t.world.members.auditor, {
      method: "GET",
      url: `/audit?tenant_id=${t.world.tenantA}&action=tenant.update`,
    });
    expect(audit.statusCode).toBe(200);
    const row = audit.json().items[0];
    expect(row).toMatchObject({
      action: "tenant.update",
      actor_id: t.world.members.owner.id,
      tenant_id: t.world.tenantA,
      request_id: "req-audit-1",
      source_ip: "127.0.0.1",
    });
  });

  it("is append-only: UPDATE and DELETE fail at the database", async () => {
    const db = t.cp.database.db;
    await expect(db.execute(sql`UPDATE audit_log SET action = 'tampered'`)).rejects.toThrow();
    await expect(db.execute(sql`DELETE FROM audit_log`)).rejects.toThrow();
    await expect(db.execute(sql`TRUNCATE audit_log`)).rejects.toThrow();
    const rows = await db.execute(sql`SELECT count(*)::int AS n FROM audit_log WHERE action = 'tampered'`);
    expect((rows as unknown as { rows: Array<{ n: number }> }).rows[0]?.n).toBe(0);
  });

  it("paginates with a keyset cursor and filters; other tenants' rows stay hidden", async () => {
    for (let i = 0; i < 3; i++) {
      await t.call(t.world.members.owner, {
        method: "PATCH",
        url: `/tenants/${t.world.tenantA}`,
        payload: { settings: { i } },
      });
    }
    await t.call(t.world.ownerB, {
      method: "PATCH",
      url: `/tenants/${t.world.tenantB}`,
      payload: { settings: { b: 1 } },
    });
    const page1 = (
      await t.call(t.world.members.owner, { method: "GET", url: "/audit?limit=2&action=tenant.update" })
    ).json();
    expect(page1.items).toHaveLength(2);
    expect(page1.next_cursor).toBeTruthy();
    const page2 = (
      await t.call(t.world.members.owner, {
        method: "GET",
        url: `/audit?limit=2&action=tenant.update&cursor=${page1.next_cursor}`,
      })
    ).json();
    const ids = [...page1.items, ...page2.items].map((r: { id: string }) => Number(r.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(new Set(ids).size).toBe(ids.length);
    const all = [...page1.items, ...page2.items];
    expect(all.every((r: { tenant_id: string }) => r.tenant_id === t.world.tenantA)).toBe(true);
    const bad = await t.call(t.world.members.owner, { method: "GET", url: "/audit?cursor=bm9wZQ" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.field).toBe("cursor");
  });
});
