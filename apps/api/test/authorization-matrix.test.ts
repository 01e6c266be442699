import type { RouteInfo } from "@vpnpanel/api";
import { type Role, roleHas, roles } from "@vpnpanel/control";
import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, createTestApi, type TestApi } from "../../../test/support/api";
import { allFixtures } from "./matrix";

// The authorization matrix, generated from the routes the app registered and the role table:
// every route × (anonymous, each role in its own tenant, each role against another tenant, platform
// owner). A route added without a fixture here fails the first test.

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

const key = (r: RouteInfo) => `${r.method} ${r.url}`;

async function send(who: Account | null, req: InjectOptions & { freshSession?: boolean }) {
  let caller = who;
  if (caller && req.freshSession) caller = await t.login(caller.email);
  const { freshSession: _f, ...rest } = req;
  return t.call(caller, rest);
}

function expectAllowed(status: number, label: string) {
  expect(status, `${label}: expected success`).toBeGreaterThanOrEqual(200);
  expect(status, `${label}: expected success`).toBeLessThan(300);
}

describe("authorization matrix", () => {
  it("every registered route has a matrix fixture", () => {
    const missing = t.api.routes.map(key).filter((k) => !allFixtures[k]);
    expect(missing).toEqual([]);
  });

  // Every route × 6 callers × 2 tenants, each with fresh fixtures: minutes on a loaded 2-core machine.
  it("covers every route declared in the app", { timeout: 900_000 }, async () => {
    for (const route of t.api.routes) {
      const fixture = allFixtures[key(route)];
      if (!fixture) continue;
      const label = key(route);
      const { auth } = route;
      const A = t.world.tenantA;
      const B = t.world.tenantB;

      // Anonymous.
      const anon = await send(null, await fixture(t, A, t.world.members.owner));
      if (auth.kind === "public") {
        expect([401, 403], `${label} anonymous`).not.toContain(anon.statusCode);
        continue;
      }
      expect(anon.statusCode, `${label} anonymous`).toBe(401);
      expect(anon.json().error.code).toBe("unauthenticated");

      // Platform owner can do everything.
      const platform = await send(t.world.platform, await fixture(t, A, t.world.platform));
      expectAllowed(platform.statusCode, `${label} platform owner`);

      for (const role of roles as readonly Role[]) {
        const who = t.world.members[role];
        const own = await send(who, await fixture(t, A, who));
        const ownLabel = `${label} as ${role} in own tenant`;
        if (auth.kind === "authenticated") {
          expectAllowed(own.statusCode, ownLabel);
          continue;
        }
        if (auth.kind === "platform") {
          expect(own.statusCode, ownLabel).toBe(403);
          continue;
        }
        if (roleHas(role, auth.permission)) expectAllowed(own.statusCode, ownLabel);
        else expect(own.statusCode, ownLabel).toBe(403);

        // Another tenant's objects do not exist for this caller.
        const other = await send(who, await fixture(t, B, who));
        expect(other.statusCode, `${label} as ${role} against another tenant`).toBe(404);
      }
    }
  });
});
