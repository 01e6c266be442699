import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";

// Generated from the route table: every route that takes path parameters or a body must answer
// malformed input with 400 `validation_failed` naming the offending field, and never a 500.

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

const fill = (url: string, bad: string) =>
  url.replace(/:([A-Za-z]+)/g, (_m, name) => (name === bad ? "bad id!" : "x"));

describe("input validation (generated from the route table)", () => {
  it("a malformed path parameter is a 400 naming the parameter", async () => {
    const checked: string[] = [];
    for (const r of t.api.routes) {
      for (const p of r.params) {
        const res = await t.call(t.world.platform, {
          method: r.method as "GET",
          url: fill(r.url, p),
          ...(r.hasBody ? { payload: {} } : {}),
        });
        expect(res.statusCode, `${r.method} ${r.url} (${p})`).toBe(400);
        expect(res.json().error.code).toBe("validation_failed");
        expect(res.json().error.message).toMatch(/params\./);
        checked.push(`${r.method} ${r.url}`);
      }
    }
    expect(checked.length).toBeGreaterThan(0);
  });

  it("an unknown body field is a 400 naming the field; wrong JSON is a 400 too", async () => {
    const withBody = t.api.routes.filter((r) => r.hasBody && r.params.length === 0);
    expect(withBody.length).toBeGreaterThan(0);
    for (const r of withBody) {
      const res = await t.call(t.world.platform, {
        method: r.method as "POST",
        url: r.url,
        payload: { not_a_field: 1 },
      });
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(400);
      const err = res.json().error;
      expect(err.code).toBe("validation_failed");
      expect(typeof err.field).toBe("string");
      const broken = await t.call(t.world.platform, {
        method: r.method as "POST",
        url: r.url,
        headers: { "content-type": "application/json" },
        payload: "{ not json",
      });
      expect(broken.statusCode, `${r.method} ${r.url} broken JSON`).toBe(400);
      expect(broken.json().error.request_id).toBeTruthy();
    }
  });

  it("errors never carry stack traces or SQL", async () => {
    const res = await t.call(t.world.platform, {
      method: "POST",
      url: "/tenants",
      payload: { name: "x".repeat(500), slug: "ok-slug" },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.field).toBe("name");
    const dup1 = await t.call(t.world.platform, {
      method: "POST",
      url: "/tenants",
      payload: { name: "Dup", slug: "dup-slug" },
    });
    expect(dup1.statusCode).toBe(201);
    const dup2 = await t.call(t.world.platform, {
      method: "POST",
      url: "/tenants",
      payload: { name: "Dup", slug: "dup-slug" },
    });
    expect(dup2.statusCode).toBe(409);
    expect(dup2.json()).toEqual({
      error: {
        code: "conflict",
        message: 'a tenant with slug "dup-slug" already exists',
        request_id: expect.any(String),
        field: "slug",
      },
    });
    expect(dup2.body).not.toMatch(/insert|select|stack|at \//i);
  });

  it("an unknown route is a 404 in the error shape", async () => {
    const res = await t.app.inject({ method: "GET", url: "/nope" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe("not_found");
  });
});
