import { newSubscriptionToken } from "@vpnpanel/domain";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";
import { seedFeedWorld, seedUser } from "./sub-support";

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi({ env: { SUB_RATE_LIMIT_PER_MINUTE: "5" } });
});
afterAll(async () => {
  await t?.close();
});

const get = (token: string) =>
  t.app.inject({ method: "GET", url: `/sub/${token}`, headers: { "user-agent": "v2rayN/6.42" } });

describe("GET /sub/{token}: rate limit per token", () => {
  it("answers 429 with Retry-After past the limit, without affecting other tokens", async () => {
    const { nodeIds } = await seedFeedWorld(t, t.world.tenantA);
    const hammer = await seedUser(t, t.world.tenantA, { username: "hammer", nodeIds });
    const other = await seedUser(t, t.world.tenantA, { username: "other", nodeIds });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(hammer.token)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const limited = await get(hammer.token);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe("rate_limited");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect((await get(other.token)).statusCode).toBe(200);
  });

  it("limits unknown tokens too, so probing costs the prober", async () => {
    const probe = newSubscriptionToken();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await get(probe)).statusCode);
    expect(statuses).toEqual([404, 404, 404, 404, 404, 429, 429]);
  });

  it("the window frees up after a minute", async () => {
    if (t.cp.coord.kind !== "memory") return; // Redis windows follow real time; covered above.
    const { nodeIds } = await seedFeedWorld(t, t.world.tenantB);
    const u = await seedUser(t, t.world.tenantB, { username: "patient", nodeIds });
    for (let i = 0; i < 5; i++) expect((await get(u.token)).statusCode).toBe(200);
    expect((await get(u.token)).statusCode).toBe(429);
    t.clock.advance(61_000);
    expect((await get(u.token)).statusCode).toBe(200);
  });
});
