import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

const GiB = 2 ** 30;

describe("plans", () => {
  it("an admin creates, reads, changes and deletes a plan, each step audited", async () => {
    const admin = t.world.members.admin;
    const created = await t.call(admin, {
      method: "POST",
      url: "/plans",
      payload: {
        name: "Monthly 50G",
        quota_bytes: 50 * GiB,
        duration_seconds: 30 * 86_400,
        engines: ["xray", "wireguard"],
        reset_strategy: "month",
        reset_anchor: "calendar",
      },
    });
    expect(created.statusCode).toBe(201);
    const plan = created.json();
    expect(plan).toMatchObject({
      name: "Monthly 50G",
      quota_bytes: 50 * GiB,
      hold_mode: "none",
      tenant_id: t.world.tenantA,
    });

    const patched = await t.call(admin, {
      method: "PATCH",
      url: `/plans/${plan.id}`,
      payload: { hold_mode: "first_connection", max_hold_seconds: 7 * 86_400, next_plan_id: plan.id },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ hold_mode: "first_connection", next_plan_id: plan.id });

    const list = await t.call(admin, { method: "GET", url: "/plans" });
    expect(list.json().items.map((p: { id: string }) => p.id)).toContain(plan.id);

    expect((await t.call(admin, { method: "DELETE", url: `/plans/${plan.id}` })).statusCode).toBe(204);
    expect((await t.call(admin, { method: "GET", url: `/plans/${plan.id}` })).statusCode).toBe(404);

    const audit = await t.call(t.world.members.owner, { method: "GET", url: `/audit?target_id=${plan.id}` });
    expect(audit.json().items.map((a: { action: string }) => a.action)).toEqual([
      "plan.delete",
      "plan.update",
      "plan.create",
    ]);
  });

  it("validation errors name the field", async () => {
    const admin = t.world.members.admin;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: "" }, "name"],
      [{ name: "x", quota_bytes: -1 }, "quota_bytes"],
      [{ name: "x", engines: [] }, "engines"],
      [{ name: "x", engines: ["openvpn"] }, "engines.0"],
      [{ name: "x", hold_mode: "date" }, "hold_start_at"],
      [{ name: "x", max_hold_seconds: 60 }, "max_hold_seconds"],
      [{ name: "x", reset_anchor: "calendar" }, "reset_anchor"],
      [{ name: "x", next_plan_id: "pln_0000000000000000000000000z" }, "next_plan_id"],
      [{ name: "x", colour: "red" }, "colour"],
    ];
    for (const [payload, field] of cases) {
      const r = await t.call(admin, { method: "POST", url: "/plans", payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error.field, JSON.stringify(payload)).toBe(field);
    }
  });

  it("a plan name is unique per tenant (409 naming the field)", async () => {
    const admin = t.world.members.admin;
    await t.call(admin, { method: "POST", url: "/plans", payload: { name: "Dup" } });
    const again = await t.call(admin, { method: "POST", url: "/plans", payload: { name: "Dup" } });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.field).toBe("name");
    // The same name in another tenant is fine.
    const other = await t.call(t.world.ownerB, { method: "POST", url: "/plans", payload: { name: "Dup" } });
    expect(other.statusCode).toBe(201);
  });

  it("a next plan must belong to the same tenant", async () => {
    const foreign = await t.call(t.world.ownerB, {
      method: "POST",
      url: "/plans",
      payload: { name: "B only" },
    });
    const r = await t.call(t.world.members.admin, {
      method: "POST",
      url: "/plans",
      payload: { name: "Chained", next_plan_id: foreign.json().id },
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.field).toBe("next_plan_id");
  });
});
