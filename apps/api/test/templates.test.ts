import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

const url = (kind: string) => `/tenants/${t.world.tenantA}/templates/${kind}`;

describe("config templates", () => {
  it("serves the built-in default until the tenant saves its own, and back after a reset", async () => {
    const owner = t.world.members.owner;
    const before = (await t.call(owner, { method: "GET", url: url("clash-meta") })).json();
    expect(before.custom).toBe(false);
    expect(before.body).toContain("{{PROXIES}}");
    const mine =
      "proxies: []\nproxy-groups:\n  - name: Pick\n    type: select\n    proxies: ['{{PROXIES}}']\nrules:\n  - MATCH,Pick\n";
    const saved = await t.call(owner, { method: "PUT", url: url("clash-meta"), payload: { body: mine } });
    expect(saved.statusCode).toBe(200);
    expect(saved.json()).toMatchObject({ custom: true, body: mine });
    expect((await t.call(owner, { method: "DELETE", url: url("clash-meta") })).statusCode).toBe(204);
    expect((await t.call(owner, { method: "GET", url: url("clash-meta") })).json().custom).toBe(false);
  });

  it("refuses an invalid template with an error naming what is wrong, and keeps the old one", async () => {
    const owner = t.world.members.owner;
    const badYaml = await t.call(owner, {
      method: "PUT",
      url: url("clash-meta"),
      payload: { body: "proxies: [\n" },
    });
    expect(badYaml.statusCode).toBe(400);
    expect(badYaml.json().error).toMatchObject({ code: "validation_failed", field: "body" });
    const noPlace = await t.call(owner, {
      method: "PUT",
      url: url("sing-box"),
      payload: { body: JSON.stringify({ outbounds: [{ type: "direct", tag: "direct" }] }) },
    });
    expect(noPlace.statusCode).toBe(400);
    expect(noPlace.json().error.message).toMatch(/template is invalid/);
    const remark = await t.call(owner, {
      method: "PUT",
      url: url("remark"),
      payload: { body: "{USERNAME} {NOPE}" },
    });
    expect(remark.statusCode).toBe(400);
    expect(remark.json().error.message).toMatch(/NOPE/);
    expect((await t.call(owner, { method: "GET", url: url("remark") })).json().custom).toBe(false);
  });

  it("writes an audit row for each change", async () => {
    await t.call(t.world.members.admin, {
      method: "PUT",
      url: url("remark"),
      payload: { body: "{USERNAME}" },
    });
    const audit = await t.call(t.world.members.auditor, { method: "GET", url: `/audit?action=template.put` });
    expect(audit.json().items[0]).toMatchObject({
      actor_id: t.world.members.admin.id,
      target_id: `${t.world.tenantA}/remark`,
    });
  });
});
