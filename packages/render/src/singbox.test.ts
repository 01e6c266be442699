import { describe, expect, it } from "vitest";
import { resolveProxies } from "./resolve-proxies";
import { singboxEntries } from "./singbox";
import {
  buildSingboxDocument,
  DEFAULT_SINGBOX_TEMPLATE,
  renderSingbox,
  validateSingboxTemplate,
} from "./singbox-template";
import { combinationNode, makeSubscriber, NOW, wireguardNode } from "./test-fixtures";
import type { Core } from "./types";

type Json = Record<string, unknown>;

function proxiesFor(core: Core) {
  return resolveProxies(makeSubscriber(), [combinationNode(core), wireguardNode()], { now: NOW }).proxies;
}

describe.each<Core>(["xray", "v2ray"])("sing-box for a %s node", (core) => {
  const text = renderSingbox(proxiesFor(core));
  const doc = JSON.parse(text) as Json;

  it("renders every combination sing-box can express (golden)", async () => {
    await expect(text).toMatchFileSnapshot(`./__golden__/sing-box-${core}.json`);
  });

  it("has a selector and a urltest over every proxy, direct, and WireGuard as an endpoint", () => {
    const outbounds = doc.outbounds as Json[];
    const endpoints = doc.endpoints as Json[];
    const tags = [...outbounds.slice(3), ...endpoints].map((o) => o.tag);
    expect(outbounds[0]).toEqual({ type: "selector", tag: "Proxy", outbounds: ["Auto", ...tags] });
    expect(outbounds[1]).toMatchObject({ type: "urltest", tag: "Auto", outbounds: tags });
    expect(outbounds[2]).toEqual({ type: "direct", tag: "direct" });
    expect(endpoints).toEqual([
      expect.objectContaining({ type: "wireguard", address: ["10.8.0.2/32", "fd42:42:42::2/128"] }),
    ]);
    expect(outbounds.some((o) => o.type === "wireguard")).toBe(false);
  });
});

describe("sing-box mapping details", () => {
  const proxies = proxiesFor("xray");
  const { outbounds } = singboxEntries(proxies);
  const byTag = new Map(outbounds.map((o) => [o.tag, o]));

  it("leaves out xhttp, which sing-box does not implement", () => {
    expect([...byTag.keys()].some((tag) => String(tag).includes("xhttp"))).toBe(false);
  });

  it("puts REALITY under tls with uTLS enabled", () => {
    expect(byTag.get("vless-grpc-reality")).toEqual({
      type: "vless",
      tag: "vless-grpc-reality",
      server: "de.example.com",
      server_port: 20023,
      uuid: "7f3c1a52-9b4e-4d2a-8c61-2f0e5d9a7b13",
      packet_encoding: "xudp",
      tls: {
        enabled: true,
        server_name: "www.example.org",
        utls: { enabled: true, fingerprint: "firefox" },
        reality: {
          enabled: true,
          public_key: "2D-qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8",
          short_id: "0123456789abcdef",
        },
      },
      transport: { type: "grpc", service_name: "grpc-svc" },
    });
  });

  it("an empty proxy list still yields a selector with a named placeholder", () => {
    const doc = buildSingboxDocument([]);
    expect((doc.outbounds as Json[])[0]).toMatchObject({ outbounds: ["Auto", "No servers available"] });
  });
});

describe("sing-box templates", () => {
  const template = JSON.stringify({
    dns: { servers: [{ type: "https", tag: "cf", server: "1.1.1.1" }] },
    outbounds: [
      { type: "selector", tag: "Select", outbounds: ["{{PROXIES}}", "direct"], default: "direct" },
      { type: "direct", tag: "direct" },
      { type: "block", tag: "block" },
    ],
    route: { rules: [{ domain_suffix: ["ads.example"], outbound: "block" }], final: "Select" },
  });

  it("the built-in default and a tenant template are valid", () => {
    expect(validateSingboxTemplate(DEFAULT_SINGBOX_TEMPLATE)).toEqual([]);
    expect(validateSingboxTemplate(template)).toEqual([]);
  });

  it("merging keeps the tenant's sections and expands the placeholder", () => {
    const proxies = proxiesFor("v2ray").slice(0, 2);
    const doc = buildSingboxDocument(proxies, template);
    expect(doc.dns).toEqual({ servers: [{ type: "https", tag: "cf", server: "1.1.1.1" }] });
    expect((doc.outbounds as Json[])[0]).toEqual({
      type: "selector",
      tag: "Select",
      outbounds: [...proxies.map((p) => p.name), "direct"],
      default: "direct",
    });
    expect(doc.endpoints).toBeUndefined();
  });

  it("refuses non-JSON, a missing placeholder and references to unknown outbounds, naming the field", () => {
    const fields = (t: string) => validateSingboxTemplate(t).map((e) => e.field);
    expect(fields("{")).toEqual(["template"]);
    expect(fields(template.replace("{{PROXIES}}", "direct"))).toEqual(["outbounds"]);
    expect(fields(template.replace('"final":"Select"', '"final":"Nope"'))).toEqual(["route.final"]);
    expect(fields(template.replace('"outbound":"block"', '"outbound":"drop"'))).toEqual([
      "route.rules[0].outbound",
    ]);
    expect(fields(template.replace('"default":"direct"', '"default":"x"'))).toEqual(["outbounds[0].default"]);
    // Renaming "block" to "direct" duplicates a tag and orphans the rule that used "block".
    expect(fields(template.replace('"tag":"block"', '"tag":"direct"'))).toEqual([
      "outbounds",
      "route.rules[0].outbound",
    ]);
  });
});
