import { createRequire } from "node:module";
import Ajv from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { clashProxy } from "./clash-meta";
import { DEFAULT_CLASH_TEMPLATE, renderClashMeta } from "./clash-template";
import { placeholderXrayProxy } from "./placeholder";
import { type ResolvedProxy, resolveProxies } from "./resolve-proxies";
import { combinationNode, makeSubscriber, NOW, wireguardNode } from "./test-fixtures";
import type { Core } from "./types";

// The published Clash-Meta schema (meta-json-schema, draft-07, meant for YAML editors). It uses
// editor-only keywords (markdownDescription, errorMessage, deprecationMessage, …), so Ajv must run
// non-strict; the structural keywords are standard draft-07.
const schema = createRequire(import.meta.url)("meta-json-schema/schemas/meta-json-schema.json");
const validateSchema = new Ajv({ strict: false, allErrors: true }).compile(schema);

function expectSchemaValid(yamlText: string): void {
  const ok = validateSchema(parse(yamlText));
  expect(ok ? [] : validateSchema.errors?.slice(0, 5)).toEqual([]);
}

function proxiesFor(core: Core): ResolvedProxy[] {
  return resolveProxies(makeSubscriber(), [combinationNode(core), wireguardNode()], { now: NOW }).proxies;
}

describe("the schema check", () => {
  it("is not vacuous: it rejects a proxy with an unknown cipher or a non-numeric port", () => {
    expect(
      validateSchema({
        proxies: [{ name: "a", type: "ss", server: "h", port: 1, cipher: "rot13", password: "p" }],
      }),
    ).toBe(false);
    expect(
      validateSchema({ proxies: [{ name: "a", type: "vless", server: "h", port: "x", uuid: "u" }] }),
    ).toBe(false);
  });
});

describe.each<Core>(["xray", "v2ray"])("Clash-Meta for a %s node", (core) => {
  const proxies = proxiesFor(core);
  const yaml = renderClashMeta(proxies);

  it("renders every combination mihomo can express (golden)", async () => {
    await expect(yaml).toMatchFileSnapshot(`./__golden__/clash-meta-${core}.yaml`);
  });

  it("validates against the published Clash-Meta JSON schema", () => {
    expectSchemaValid(yaml);
  });

  it.each(proxies.map((p) => [p.name, p] as const))("%s alone also validates", (_name, proxy) => {
    expectSchemaValid(renderClashMeta([proxy]));
  });

  it("has a select group, a url-test group and a MATCH rule over all proxies", () => {
    const doc = parse(yaml);
    const names = doc.proxies.map((p: { name: string }) => p.name);
    expect(doc["proxy-groups"]).toEqual([
      { name: "Proxy", type: "select", proxies: ["Auto", ...names] },
      expect.objectContaining({ name: "Auto", type: "url-test", proxies: names }),
    ]);
    expect(doc.rules).toEqual(["MATCH,Proxy"]);
  });
});

describe("Clash-Meta mapping details", () => {
  const byName = new Map(proxiesFor("xray").map((p) => [p.name, p]));
  const entry = (name: string) => {
    const p = byName.get(name);
    if (!p) throw new Error(`no proxy ${name}`);
    return clashProxy(p);
  };

  it("leaves out what mihomo cannot express instead of emitting something broken", () => {
    expect(entry("trojan-tcp_http-tls")).toBeNull();
    expect(entry("vmess-xhttp-tls")).toBeNull();
    expect(entry("vless-xhttp-tls")).not.toBeNull();
  });

  it("maps httpupgrade to ws with v2ray-http-upgrade, and trojan's server name to sni", () => {
    expect(entry("vless-httpupgrade-tls")).toMatchObject({
      network: "ws",
      "ws-opts": { path: "/up", headers: { Host: "cdn.example.com" }, "v2ray-http-upgrade": true },
      servername: "edge.example.com",
    });
    expect(entry("trojan-ws-tls")).toMatchObject({ sni: "edge.example.com" });
    expect(entry("trojan-ws-tls")).not.toHaveProperty("servername");
  });

  it("puts REALITY keys and the uTLS fingerprint where mihomo reads them", () => {
    expect(entry("vless-tcp-reality-vision")).toMatchObject({
      tls: true,
      flow: "xtls-rprx-vision",
      servername: "www.example.org",
      "client-fingerprint": "firefox",
      "reality-opts": { "public-key": expect.any(String), "short-id": "0123456789abcdef" },
    });
  });

  it("gives WireGuard bare ip/ipv6 and the peer's keys", () => {
    const wg = [...byName.values()].find((p) => p.kind === "wireguard");
    if (!wg) throw new Error("no WireGuard proxy");
    expect(clashProxy(wg)).toMatchObject({
      type: "wireguard",
      ip: "10.8.0.2",
      ipv6: "fd42:42:42::2",
      mtu: 1420,
    });
  });

  it("an empty proxy list still yields a loadable document with a named placeholder", () => {
    const doc = parse(renderClashMeta([]));
    expect(doc.proxies).toHaveLength(1);
    expect(doc.proxies[0].name).toBe("No servers available");
    expectSchemaValid(renderClashMeta([]));
  });

  it("the placeholder for a blocked user validates and points at 127.0.0.1:1", () => {
    const yaml = renderClashMeta([placeholderXrayProxy("Quota exhausted")], DEFAULT_CLASH_TEMPLATE);
    expectSchemaValid(yaml);
    expect(parse(yaml).proxies[0]).toMatchObject({ name: "Quota exhausted", server: "127.0.0.1", port: 1 });
  });
});
