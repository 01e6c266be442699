import { createHash } from "node:crypto";
import { queryRows } from "@vpnpanel/db";
import { newSubscriptionToken } from "@vpnpanel/domain";
import { type ParsedLink, parseShareLink, parseSubscriptionBody } from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { createTestApi, type TestApi } from "../../../test/support/api";
import { GIB, type SeededUser, seedFeedWorld, seedNode, seedUser } from "./sub-support";

// GET /sub/{token} against real rows: format by client, exact headers, ETag/304, the 404 that tells
// nothing, documents for blocked users, engines, WireGuard placement, rate limiting.

let t: TestApi;
let world: Awaited<ReturnType<typeof seedFeedWorld>>;
let alice: SeededUser;

beforeAll(async () => {
  t = await createTestApi({
    env: { SUB_RATE_LIMIT_PER_MINUTE: "100000", PUBLIC_URL: "https://panel.example.com/" },
  });
  world = await seedFeedWorld(t, t.world.tenantA);
  alice = await seedUser(t, t.world.tenantA, {
    username: "alice",
    quotaBytes: 100 * GIB,
    usedBytes: 10 * GIB,
    nodeIds: world.nodeIds,
    ipOffset: 10,
  });
});
afterAll(async () => {
  await t?.close();
});

/** Decodes a base64 links body and parses every link with the independent reader. */
const linksOf = (body: string) => parseSubscriptionBody(body).map(parseShareLink);
const kindOf = (l: ParsedLink) => (l.kind === "wireguard" ? "wireguard" : l.protocol);

const get = (token: string, headers: Record<string, string> = {}, query = "") =>
  t.app.inject({ method: "GET", url: `/sub/${token}${query}`, headers });

const UA = {
  v2rayN: "v2rayN/6.42",
  v2rayNG: "v2rayNG/1.8.29",
  streisand: "Streisand/1.5",
  hiddify: "HiddifyNext/2.5.7 (android) like ClashMeta v2ray sing-box",
  shadowrocket: "Shadowrocket/2.2.35 CFNetwork/1410.0.3 Darwin/22.6.0",
  clashMeta: "clash.meta/1.18.1",
  mihomo: "mihomo/1.18.5",
  clashVerge: "clash-verge/v1.7.7",
  stash: "Stash/2.4.7 Clash/1.9.0",
  singBox: "sing-box 1.10.1",
  sfa: "SFA/1.10.1 (Android 14)",
  sfi: "SFI/1.10.1 (iOS 17.5)",
  chrome:
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  curl: "curl/8.5.0",
};

describe("GET /sub/{token}: format by client", () => {
  it.each([
    ["v2rayN", UA.v2rayN],
    ["v2rayNG", UA.v2rayNG],
    ["Streisand", UA.streisand],
    ["Hiddify", UA.hiddify],
    ["Shadowrocket", UA.shadowrocket],
    ["curl (default)", UA.curl],
  ])("%s gets base64 share links that parse back", async (_name, ua) => {
    const res = await get(alice.token, { "user-agent": ua });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.body).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const links = linksOf(res.body);
    // Xray node: REALITY, two CDN hosts for ws, gRPC, SS-2022 = 5; v2ray node: 3; WireGuard: 1.
    expect(links.map(kindOf).sort()).toEqual(
      [
        "shadowsocks",
        "shadowsocks",
        "trojan",
        "vless",
        "vless",
        "vmess",
        "vmess",
        "vmess",
        "wireguard",
      ].sort(),
    );
  });

  it.each([
    ["Clash-Meta", UA.clashMeta],
    ["mihomo", UA.mihomo],
    ["Clash Verge", UA.clashVerge],
    ["Stash", UA.stash],
  ])("%s gets Clash-Meta YAML with every proxy in a group", async (_name, ua) => {
    const res = await get(alice.token, { "user-agent": ua });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/yaml; charset=utf-8");
    const doc = parseYaml(res.body) as {
      proxies: Array<{ name: string; type: string }>;
      "proxy-groups": unknown[];
    };
    expect(doc.proxies.map((p) => p.type).sort()).toEqual(
      ["ss", "ss", "trojan", "vless", "vless", "vmess", "vmess", "vmess", "wireguard"].sort(),
    );
    expect(doc["proxy-groups"].length).toBeGreaterThan(0);
  });

  it.each([
    ["sing-box", UA.singBox],
    ["SFA", UA.sfa],
    ["SFI", UA.sfi],
  ])("%s gets sing-box JSON", async (_name, ua) => {
    const res = await get(alice.token, { "user-agent": ua });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    const doc = JSON.parse(res.body) as {
      outbounds: Array<{ type: string }>;
      endpoints?: Array<{ type: string }>;
    };
    const types = doc.outbounds.map((o) => o.type);
    expect(types).toEqual(expect.arrayContaining(["vless", "vmess", "trojan", "shadowsocks", "selector"]));
    expect(doc.endpoints?.map((e) => e.type)).toEqual(["wireguard"]);
  });

  it("a browser gets the HTML page with usage and QR codes, shown inline", async () => {
    const res = await get(alice.token, { "user-agent": UA.chrome });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-disposition"]).toMatch(/^inline;/);
    expect(res.body).toContain("<h1>alice</h1>");
    expect(res.body).toContain("10 GiB");
    expect(res.body).toContain("<svg");
    expect(res.body).toContain(`https://panel.example.com/sub/${alice.token}`);
  });

  it("?format= overrides the User-Agent, and an unknown format is a 400 naming `format`", async () => {
    const res = await get(alice.token, { "user-agent": UA.v2rayN }, "?format=clash-meta");
    expect(res.headers["content-type"]).toBe("text/yaml; charset=utf-8");
    expect(res.headers.vary).toBeUndefined();
    const xray = await get(alice.token, {}, "?format=xray-json");
    expect(JSON.parse(xray.body)).toBeTruthy();
    const bad = await get(alice.token, {}, "?format=clsah");
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: "validation_failed", field: "format" });
  });
});

describe("GET /sub/{token}: headers", () => {
  it("sends subscription-userinfo, profile headers, disposition, ETag exactly", async () => {
    const res = await get(alice.token, { "user-agent": UA.v2rayN });
    const [row] = await queryRows<{ expires_at: string }>(
      t.cp.database.db,
      sql`SELECT expires_at FROM subscriptions WHERE id = ${alice.subscriptionId}`,
    );
    const expire = Math.floor(new Date(row!.expires_at).getTime() / 1000);
    // used = 10 GiB split 1:3 as stored (upload a quarter).
    expect(res.headers["subscription-userinfo"]).toBe(
      `upload=${(10 * GIB) / 4}; download=${(30 * GIB) / 4}; total=${100 * GIB}; expire=${expire}`,
    );
    expect(res.headers["profile-update-interval"]).toBe("12");
    expect(res.headers["profile-title"]).toBe(`base64:${Buffer.from("alice").toString("base64")}`);
    expect(res.headers["content-disposition"]).toBe(
      `attachment; filename="alice.txt"; filename*=UTF-8''alice.txt`,
    );
    expect(res.headers["profile-web-page-url"]).toBe(`https://panel.example.com/sub/${alice.token}`);
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(res.headers["cache-control"]).toBe("private, no-cache");
    expect(res.headers.vary).toBe("User-Agent");
    expect(res.headers["support-url"]).toBeUndefined();
  });

  it("answers HEAD with the same headers and no body (clients probe usage this way)", async () => {
    const get1 = await get(alice.token, { "user-agent": UA.clashMeta });
    const head = await t.app.inject({
      method: "HEAD",
      url: `/sub/${alice.token}`,
      headers: { "user-agent": UA.clashMeta },
    });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe("");
    expect(head.headers["subscription-userinfo"]).toBe(get1.headers["subscription-userinfo"]);
    expect(head.headers.etag).toBe(get1.headers.etag);
  });

  it("takes the profile title and support URL from the tenant's settings", async () => {
    const owner = t.world.members.owner;
    const patched = await t.call(owner, {
      method: "PATCH",
      url: `/tenants/${t.world.tenantA}`,
      payload: { settings: { sub_profile_title: "Ünïcode VPN ✓", sub_support_url: "https://t.me/support" } },
    });
    expect(patched.statusCode).toBe(200);
    const res = await get(alice.token, { "user-agent": UA.v2rayN });
    expect(res.headers["profile-title"]).toBe(`base64:${Buffer.from("Ünïcode VPN ✓").toString("base64")}`);
    expect(res.headers["support-url"]).toBe("https://t.me/support");
    await t.call(owner, { method: "PATCH", url: `/tenants/${t.world.tenantA}`, payload: { settings: {} } });
  });
});

describe("GET /sub/{token}: ETag and 304", () => {
  it("answers 304 with no body to a matching If-None-Match, fresh usage header included", async () => {
    const first = await get(alice.token, { "user-agent": UA.v2rayN });
    const etag = first.headers.etag as string;
    const again = await get(alice.token, { "user-agent": UA.v2rayN, "if-none-match": etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expect(again.headers.etag).toBe(etag);
    expect(again.headers["subscription-userinfo"]).toBe(first.headers["subscription-userinfo"]);
    const listed = await get(alice.token, { "user-agent": UA.v2rayN, "if-none-match": `"nope", W/${etag}` });
    expect(listed.statusCode).toBe(304);
  });

  it("a different format has a different ETag (no 304 across formats)", async () => {
    const links = await get(alice.token, { "user-agent": UA.v2rayN });
    const clash = await get(alice.token, {
      "user-agent": UA.clashMeta,
      "if-none-match": links.headers.etag as string,
    });
    expect(clash.statusCode).toBe(200);
    expect(clash.headers.etag).not.toBe(links.headers.etag);
  });

  it("usage within a bucket keeps the ETag; crossing it changes the ETag", async () => {
    const before = await get(alice.token, { "user-agent": UA.v2rayN });
    await t.cp.database.db.execute(
      sql`UPDATE subscription_usage SET used_bytes = used_bytes + 1000, download_bytes = download_bytes + 1000
          WHERE subscription_id = ${alice.subscriptionId}`,
    );
    const small = await get(alice.token, {
      "user-agent": UA.v2rayN,
      "if-none-match": before.headers.etag as string,
    });
    expect(small.statusCode).toBe(304);
    expect(small.headers["subscription-userinfo"]).not.toBe(before.headers["subscription-userinfo"]);
    await t.cp.database.db.execute(
      sql`UPDATE subscription_usage SET used_bytes = used_bytes + ${String(2 * GIB)}::bigint,
            download_bytes = download_bytes + ${String(2 * GIB)}::bigint
          WHERE subscription_id = ${alice.subscriptionId}`,
    );
    const big = await get(alice.token, {
      "user-agent": UA.v2rayN,
      "if-none-match": before.headers.etag as string,
    });
    expect(big.statusCode).toBe(200);
    expect(big.headers.etag).not.toBe(before.headers.etag);
  });
});

describe("GET /sub/{token}: unknown and revoked tokens", () => {
  const strip = (body: string) => {
    const j = JSON.parse(body);
    delete j.error.request_id;
    return j;
  };

  it("an unknown token and a revoked token get byte-identical 404s (apart from the request id)", async () => {
    const bob = await seedUser(t, t.world.tenantA, { username: "bob-revoked", nodeIds: world.nodeIds });
    expect((await get(bob.token)).statusCode).toBe(200);
    // Reissue: the old token's hash is gone from the table, exactly like a token that never existed.
    const fresh = newSubscriptionToken();
    await t.cp.database.db.execute(
      sql`UPDATE subscriptions SET token_hash = ${createHash("sha256").update(fresh).digest("hex")},
            revision = revision + 1 WHERE id = ${bob.subscriptionId}`,
    );
    const revoked = await get(bob.token, { "user-agent": UA.v2rayN });
    const unknown = await get(newSubscriptionToken(), { "user-agent": UA.v2rayN });
    const junk = await get("not-a-token", { "user-agent": UA.v2rayN });
    for (const r of [revoked, unknown, junk]) {
      expect(r.statusCode).toBe(404);
      expect(r.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(Object.keys(r.headers).sort()).toEqual(Object.keys(unknown.headers).sort());
    }
    expect(strip(revoked.body)).toEqual(strip(unknown.body));
    expect(strip(junk.body)).toEqual(strip(unknown.body));
    expect(strip(unknown.body)).toEqual({ error: { code: "not_found", message: "subscription not found" } });
    expect((await get(fresh)).statusCode).toBe(200);
  });

  it("a deleted user's token is the same 404", async () => {
    const gone = await seedUser(t, t.world.tenantA, { username: "gone", nodeIds: world.nodeIds });
    await t.cp.database.db.execute(sql`DELETE FROM users WHERE id = ${gone.userId}`);
    const res = await get(gone.token);
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe("subscription not found");
  });
});

describe("GET /sub/{token}: blocked users get a document that connects nowhere", () => {
  it.each([
    ["limited", { state: "limited" as const, usedBytes: 100 * GIB }, "Quota exhausted"],
    ["disabled", { state: "disabled" as const }, "Disabled"],
    [
      "expired",
      { state: "expired" as const, expiresAt: new Date("2025-01-02T00:00:00Z") },
      "Expired on 2025-01-02",
    ],
    ["active but over quota", { usedBytes: 101 * GIB }, "Quota exhausted"],
  ])("%s user", async (_name, state, reason) => {
    const u = await seedUser(t, t.world.tenantA, {
      username: `blocked-${_name.replace(/\W+/g, "-")}`,
      nodeIds: world.nodeIds,
      quotaBytes: 100 * GIB,
      ...state,
    });
    const res = await get(u.token, { "user-agent": UA.v2rayN });
    expect(res.statusCode).toBe(200);
    const links = linksOf(res.body);
    expect(links).toHaveLength(1);
    expect(links[0]).toMatchObject({ protocol: "vless", address: "127.0.0.1", port: 1, name: reason });
    const clash = parseYaml((await get(u.token, { "user-agent": UA.mihomo })).body) as {
      proxies: Array<{ name: string; server: string }>;
    };
    expect(clash.proxies.map((p) => [p.name, p.server])).toEqual([[reason, "127.0.0.1"]]);
    const wg = await get(u.token, {}, "?format=wireguard");
    expect(wg.body).toContain(`# ${reason}`);
    expect(wg.body).not.toContain("de.example.com");
  });
});

describe("GET /sub/{token}: engines and WireGuard", () => {
  it("an xray-only user gets no WireGuard anywhere", async () => {
    const x = await seedUser(t, t.world.tenantA, {
      username: "xray-only",
      nodeIds: world.nodeIds,
      userEngines: ["xray"],
    });
    const links = linksOf((await get(x.token, { "user-agent": UA.v2rayN })).body);
    expect(links.map(kindOf)).not.toContain("wireguard");
    expect(links.length).toBe(8);
    const sb = JSON.parse((await get(x.token, { "user-agent": UA.sfa })).body);
    expect(sb.endpoints ?? []).toEqual([]);
    expect((await get(x.token, {}, `/wireguard/${world.xrayNode}`)).statusCode).toBe(404);
  });

  it("a wireguard-only user gets only the WireGuard profile", async () => {
    const w = await seedUser(t, t.world.tenantA, {
      username: "wg-only",
      nodeIds: world.nodeIds,
      engines: ["wireguard"],
    });
    const links = linksOf((await get(w.token, { "user-agent": UA.v2rayN })).body);
    expect(links.map(kindOf)).toEqual(["wireguard"]);
  });

  it("the WireGuard endpoint port follows the agent's interface placement", async () => {
    // Pool 10.80.0.0/12, one reserved host: offset 10 is 10.80.0.12; 4 peers per interface → wg3.
    const res = await get(alice.token, {}, `/wireguard/${world.xrayNode}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-disposition"]).toContain('filename="Frankfurt.conf"');
    expect(res.body).toContain("Address = 10.80.0.12/32, fd80::c/128");
    expect(res.body).toContain("Endpoint = de.example.com:51823");
    expect(res.body).toContain("DNS = 1.1.1.1");
    const first = await seedUser(t, t.world.tenantA, {
      username: "wg-first",
      nodeIds: world.nodeIds,
      ipOffset: 0,
    });
    const conf = (await get(first.token, {}, "?format=wireguard")).body;
    expect(conf).toContain("Address = 10.80.0.2/32");
    expect(conf).toContain("Endpoint = de.example.com:51820");
  });

  it("links for the v2ray node carry nothing that core lacks", async () => {
    const links = linksOf((await get(alice.token, { "user-agent": UA.v2rayN })).body);
    const legacy = links.filter((l) => l.address === "203.0.113.10");
    expect(legacy).toHaveLength(3);
    for (const l of legacy) {
      if (l.kind === "wireguard") throw new Error("no WireGuard on the v2ray node");
      expect(l.security.type).not.toBe("reality");
      expect(l.flow).toBe("");
      expect(l.security.fingerprint).toBe("");
      expect(l.transport.type).not.toBe("grpc");
    }
  });

  it("hosts override what clients dial, and server-side secrets never appear", async () => {
    const raw = (await get(alice.token, { "user-agent": UA.v2rayN })).body;
    const vmess = linksOf(raw).filter((l) => l.kind !== "wireguard" && l.protocol === "vmess");
    expect(vmess.map((l) => [l.address, l.port, l.name])).toEqual([
      ["cdn1.example.com", 443, expect.stringMatching(/^Frankfurt CDN-1 \d+(\.\d+)? GiB$/)],
      ["cdn2.example.com", 443, "Frankfurt CDN-2"],
      // Hosts without their own remark use the tenant's default remark template.
      ["203.0.113.10", 443, expect.stringMatching(/^Legacy VMESS · \d+(\.\d+)? GiB left · \d+d$/)],
    ]);
    for (const res of [
      await get(alice.token, { "user-agent": UA.clashMeta }),
      await get(alice.token, { "user-agent": UA.sfa }),
      await get(alice.token, {}, "?format=xray-json"),
    ]) {
      expect(res.body).not.toContain("server-only-secret");
      expect(res.body).not.toContain("/etc/ssl");
    }
  });

  it("a node whose agent never reported a key offers no WireGuard (nothing to connect to)", async () => {
    const silent = await seedNode(t, t.world.tenantA, {
      name: "Silent",
      inbounds: [],
      wireguard: { listenPort: 51820, addresses: ["10.80.0.1/12"] },
      wgPublicKey: null,
    });
    const u = await seedUser(t, t.world.tenantA, { username: "on-silent", nodeIds: [silent] });
    const links = linksOf((await get(u.token, { "user-agent": UA.v2rayN })).body);
    expect(links).toHaveLength(1);
    expect(links[0]!.name).toBe("No servers available");
  });
});
