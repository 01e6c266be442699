import { systemActor } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { createTestControlPlane, type TestControlPlane } from "../../../test/support/control-plane";

const planes: TestControlPlane[] = [];
afterAll(async () => {
  for (const p of planes) await p.close();
});

async function plane(env: Record<string, string> = {}) {
  const t = await createTestControlPlane({ env });
  planes.push(t);
  const tenantId = (await t.cp.tenants.create(systemActor(), { name: "IP", slug: "ip" })).id;
  return { t, tenantId };
}

describe("WireGuard address allocation", () => {
  it("50 concurrent creations get 50 distinct addresses; deleted ones are reused", async () => {
    const { t, tenantId } = await plane();
    const actor = systemActor();
    const created = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.cp.users.create(actor, tenantId, { username: `c${i}` })),
    );
    const addresses = created.map((u) => u.credentials!.ipv4);
    expect(new Set(addresses).size).toBe(50);
    // Fresh pool: the first 50 offsets after the reserved node address (10.80.0.1).
    const [r] = await queryRows<{ min: unknown; max: unknown; next: unknown }>(
      t.cp.database.db,
      sql`SELECT min("offset") AS min, max("offset") AS max, (SELECT next_offset FROM ip_pools) AS next FROM ip_allocations`,
    );
    expect([Number(r!.min), Number(r!.max), Number(r!.next)]).toEqual([0, 49, 50]);
    expect(addresses).toContain("10.80.0.2/32");

    const freed = created.slice(0, 10);
    for (const u of freed) await t.cp.users.remove(actor, u.id);
    const again = await Promise.all(
      Array.from({ length: 12 }, (_, i) => t.cp.users.create(actor, tenantId, { username: `r${i}` })),
    );
    const reused = again.map((u) => u.credentials!.ipv4);
    expect(new Set(reused).size).toBe(12);
    // The ten released addresses come back first; the pool grows only by the two it lacked.
    expect(reused.filter((a) => freed.some((f) => f.credentials!.ipv4 === a))).toHaveLength(10);
    const [after] = await queryRows<{ next: unknown; free: unknown }>(
      t.cp.database.db,
      sql`SELECT (SELECT next_offset FROM ip_pools) AS next, (SELECT count(*) FROM ip_free) AS free`,
    );
    expect([Number(after!.next), Number(after!.free)]).toEqual([52, 0]);
  });

  it("a dual-stack pool gives each user the IPv4 and IPv6 address of one offset", async () => {
    const { t, tenantId } = await plane({ WG_POOL_V4: "10.70.0.0/16", WG_POOL_V6: "fd70::/64" });
    const u = await t.cp.users.create(systemActor(), tenantId, { username: "dual" });
    expect(u.credentials).toMatchObject({ ipv4: "10.70.0.2/32", ipv6: "fd70::2/128" });
  });

  it("an exhausted pool answers 409 naming the pool, for single and bulk creation, and rolls back", async () => {
    // /29: 8 addresses - network - broadcast - 1 reserved for the node = 5 assignable.
    const { t, tenantId } = await plane({ WG_POOL_V4: "10.99.0.0/29" });
    const actor = systemActor();
    const bulk = await t.cp.users.bulkCreate(actor, tenantId, {
      users: Array.from({ length: 4 }, (_, i) => ({ username: `p${i}` })),
    });
    expect(bulk.created).toBe(4);
    await expect(
      t.cp.users.bulkCreate(actor, tenantId, { users: [{ username: "q1" }, { username: "q2" }] }),
    ).rejects.toMatchObject({ code: "conflict", details: { field: "wireguard_pool" } });
    await t.cp.users.create(actor, tenantId, { username: "last" });
    await expect(t.cp.users.create(actor, tenantId, { username: "one-too-many" })).rejects.toThrow(
      /exhausted/,
    );
    const [n] = await queryRows<{ users: unknown }>(
      t.cp.database.db,
      sql`SELECT count(*) AS users FROM users`,
    );
    expect(Number(n!.users)).toBe(5);
  });

  it("rejects a bad pool in the environment with the variable's name", async () => {
    await expect(createTestControlPlane({ env: { WG_POOL_V4: "10.0.0.0/33" } })).rejects.toThrow(
      /WG_POOL_V4/,
    );
  });
});
