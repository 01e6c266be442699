import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, PASSWORD, type TestApi } from "../../../test/support/api";

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const me = (token: string) =>
  t.app.inject({ method: "GET", url: "/auth/me", headers: { authorization: `Bearer ${token}` } });
const login = async (email: string) =>
  (await t.app.inject({ method: "POST", url: "/auth/login", payload: { email, password: PASSWORD } })).json();

async function expect401(token: string, why: RegExp) {
  const res = await me(token);
  expect(res.statusCode).toBe(401);
  expect(res.json().error.code).toBe("unauthenticated");
  expect(res.json().error.message).toMatch(why);
}

describe("access tokens", () => {
  it("a fresh token works and names its key id", async () => {
    const { access_token } = await login("operator-a@test.local");
    expect((await me(access_token)).statusCode).toBe(200);
    const header = JSON.parse(Buffer.from(access_token.split(".")[0], "base64url").toString());
    expect(header).toMatchObject({ alg: "ES256", kid: expect.stringMatching(/^k_/) });
    const jwks = (await t.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json();
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(header.kid);
  });

  it("an expired token is rejected (401)", async () => {
    const { access_token } = await login("operator-a@test.local");
    t.clock.advance(16 * 60 * 1000);
    try {
      await expect401(access_token, /expired/);
    } finally {
      t.clock.advance(-16 * 60 * 1000);
    }
  });

  it("a bad signature is rejected (401)", async () => {
    const { access_token } = await login("operator-a@test.local");
    const [h, p, s] = access_token.split(".");
    const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
    await expect401(`${h}.${p}.${flipped}`, /signature|rejected/);
  });

  it("tampered claims are rejected (401)", async () => {
    const { access_token } = await login("operator-a@test.local");
    const [h, p, s] = access_token.split(".");
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    const forged = b64({ ...claims, sub: t.world.platform.id });
    await expect401(`${h}.${forged}.${s}`, /signature|rejected/);
  });

  it("an unknown key id is rejected (401)", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const token = await new SignJWT({ ver: 1, sid: "sess_x" })
      .setProtectedHeader({ alg: "ES256", kid: "k_not_ours" })
      .setSubject(t.world.platform.id)
      .setIssuer("vpnpanel")
      .setAudience("vpnpanel-api")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(privateKey);
    await expect401(token, /unknown key id/);
  });

  it('"alg: none" is rejected (401)', async () => {
    const { access_token } = await login("operator-a@test.local");
    const claims = JSON.parse(Buffer.from(access_token.split(".")[1], "base64url").toString());
    await expect401(`${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`, /algorithm/);
  });

  it("garbage and a missing token are rejected (401)", async () => {
    await expect401("not-a-jwt", /malformed/);
    const res = await t.app.inject({ method: "GET", url: "/auth/me" });
    expect(res.statusCode).toBe(401);
  });

  it("a token stays valid across a key rotation until it expires", async () => {
    const { access_token } = await login("auditor-a@test.local");
    const { rotateSigningKeys } = await import("@vpnpanel/control");
    await rotateSigningKeys(t.cp.database.db, t.cp.box, t.clock, 900);
    await t.cp.keys.refresh();
    expect((await me(access_token)).statusCode).toBe(200);
    const fresh = await login("auditor-a@test.local");
    expect(fresh.access_token.split(".")[0]).not.toBe(access_token.split(".")[0]);
    const jwks = (await t.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json();
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2);
  });
});

describe("refresh tokens", () => {
  it("rotate on every use; reuse revokes the whole family (401)", async () => {
    const first = await login("admin-a@test.local");
    const refresh = (token: string) =>
      t.app.inject({ method: "POST", url: "/auth/refresh", payload: { refresh_token: token } });
    const second = await refresh(first.refresh_token);
    expect(second.statusCode).toBe(200);
    const rotated = second.json();
    expect(rotated.refresh_token).not.toBe(first.refresh_token);
    // The old one again: reuse → 401, and the family (including the rotated token) is revoked.
    expect((await refresh(first.refresh_token)).statusCode).toBe(401);
    expect((await refresh(rotated.refresh_token)).statusCode).toBe(401);
    await expect401(rotated.access_token, /session ended/);
    const audit = await t.call(t.world.platform, {
      method: "GET",
      url: "/audit?action=auth.refresh_reuse_detected",
    });
    expect(audit.json().items.length).toBeGreaterThan(0);
  });

  it("logout ends the session: its access and refresh tokens stop working", async () => {
    const s = await login("admin-a@test.local");
    const out = await t.app.inject({
      method: "POST",
      url: "/auth/logout",
      headers: { authorization: `Bearer ${s.access_token}` },
    });
    expect(out.statusCode).toBe(204);
    await expect401(s.access_token, /session ended/);
    const r = await t.app.inject({
      method: "POST",
      url: "/auth/refresh",
      payload: { refresh_token: s.refresh_token },
    });
    expect(r.statusCode).toBe(401);
  });
});

describe("token_version revocation", () => {
  it("a password change revokes every session of the account", async () => {
    const email = "pw-change@test.local";
    const { systemActor } = await import("@vpnpanel/control");
    await t.cp.admins.create(systemActor(), {
      email,
      password: PASSWORD,
      tenantId: t.world.tenantA,
      role: "operator",
    });
    const a = await login(email);
    const b = await login(email);
    const res = await t.app.inject({
      method: "PATCH",
      url: `/admins/${(await me(a.access_token)).json().id}`,
      headers: { authorization: `Bearer ${a.access_token}` },
      payload: { password: "another long password", current_password: PASSWORD },
    });
    expect(res.statusCode).toBe(200);
    await expect401(a.access_token, /revoked/);
    await expect401(b.access_token, /revoked/);
    const r = await t.app.inject({
      method: "POST",
      url: "/auth/refresh",
      payload: { refresh_token: b.refresh_token },
    });
    expect(r.statusCode).toBe(401);
  });

  it("disabling an account revokes its sessions and blocks login", async () => {
    const email = "to-disable@test.local";
    const { systemActor } = await import("@vpnpanel/control");
    const created = await t.cp.admins.create(systemActor(), {
      email,
      password: PASSWORD,
      tenantId: t.world.tenantA,
      role: "auditor",
    });
    const s = await login(email);
    const res = await t.call(t.world.platform, {
      method: "PATCH",
      url: `/admins/${created.id}`,
      payload: { status: "disabled" },
    });
    expect(res.statusCode).toBe(200);
    await expect401(s.access_token, /disabled|revoked/);
    const again = await t.app.inject({
      method: "POST",
      url: "/auth/login",
      payload: { email, password: PASSWORD },
    });
    expect(again.statusCode).toBe(401);
  });

  it("a role change revokes the account's sessions", async () => {
    const email = "role-change@test.local";
    const { systemActor } = await import("@vpnpanel/control");
    const created = await t.cp.admins.create(systemActor(), {
      email,
      password: PASSWORD,
      tenantId: t.world.tenantA,
      role: "auditor",
    });
    const s = await login(email);
    const res = await t.call(t.world.members.owner, {
      method: "POST",
      url: `/tenants/${t.world.tenantA}/memberships`,
      payload: { admin_id: created.id, role: "operator" },
    });
    expect(res.statusCode).toBe(200);
    await expect401(s.access_token, /revoked/);
  });
});
