import { ConfigError } from "@vpnpanel/common";
import { loadControlConfig } from "@vpnpanel/control";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";

let t: TestApi;
beforeAll(async () => {
  t = await createTestApi();
});
afterAll(async () => {
  await t?.close();
});

describe("operations endpoints", () => {
  it("/health is up and /ready checks the database (and Redis when configured)", async () => {
    expect((await t.app.inject({ method: "GET", url: "/health" })).json()).toEqual({ status: "ok" });
    const ready = await t.app.inject({ method: "GET", url: "/ready" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks.database).toBe("ok");
    if (process.env.REDIS_URL) expect(ready.json().checks.redis).toBe("ok");
  });

  it("/metrics has the request counter and latency histogram by route and status, and service_info", async () => {
    await t.app.inject({ method: "GET", url: "/health" });
    const body = (await t.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toMatch(/http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(body).toMatch(/http_request_duration_seconds_bucket\{.*route="\/health".*\}/);
    expect(body).toMatch(/service_info\{service="vpnpanel",version="[^"]+",roles="api"\} 1/);
  });

  it("/openapi.json documents the routes and /docs serves Swagger UI", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(doc.openapi).toBe("3.0.3");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/auth/login", "/tenants", "/audit"]));
    expect((await t.app.inject({ method: "GET", url: "/docs/" })).statusCode).toBe(200);
  });

  it("GET /roles lists every role with its permissions", async () => {
    const res = await t.call(t.world.members.auditor, { method: "GET", url: "/roles" });
    const roles = res.json().roles;
    expect(roles.map((r: { role: string }) => r.role)).toEqual(["owner", "admin", "operator", "auditor"]);
    const auditor = roles.find((r: { role: string }) => r.role === "auditor");
    expect(auditor.permissions.every((p: string) => p.endsWith(":read"))).toBe(true);
  });
});

describe("configuration", () => {
  it("a bad or missing value stops start-up with a message naming the variable", () => {
    expect(() => loadControlConfig({ PORT: "eighty" })).toThrow(ConfigError);
    expect(() => loadControlConfig({ PORT: "eighty" })).toThrow(/PORT must be an integer/);
    expect(() => loadControlConfig({ LOG_LEVEL: "loud", ARGON2_TIME_COST: "0" })).toThrow(
      /LOG_LEVEL must be one of[\s\S]*ARGON2_TIME_COST must be >= 1/,
    );
    expect(loadControlConfig({}).PORT).toBe(8080);
  });
});
