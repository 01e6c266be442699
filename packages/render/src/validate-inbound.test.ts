import { describe, expect, it } from "vitest";
import { REALITY_PUBLIC_KEY, SS_SERVER_KEY, WG_SERVER_PUBLIC_KEY } from "./test-fixtures";
import type { InboundDefinition } from "./types";
import { validateInbound, validateWireguardEndpoint } from "./validate-inbound";

const base: InboundDefinition = {
  tag: "in",
  protocol: "vless",
  port: 443,
  transport: { type: "tcp" },
  security: { type: "tls", sni: "vpn.example.com" },
};

const with_ = (patch: Partial<InboundDefinition>): InboundDefinition => ({ ...base, ...patch });
const fields = (core: "xray" | "v2ray", inbound: InboundDefinition) =>
  validateInbound(core, inbound).map((e) => e.field);

const reality = {
  type: "reality" as const,
  reality: { publicKey: REALITY_PUBLIC_KEY, shortId: "abcd", serverName: "www.example.org" },
};

describe("validateInbound: features v2ray 4.x lacks are refused, naming the field", () => {
  it.each<[string, InboundDefinition, string]>([
    ["REALITY", with_({ security: reality }), "security.type"],
    ["XTLS vision flow", with_({ flow: "xtls-rprx-vision" }), "flow"],
    ["gRPC transport", with_({ transport: { type: "grpc", serviceName: "svc" } }), "transport.type"],
    ["httpupgrade transport", with_({ transport: { type: "httpupgrade", path: "/u" } }), "transport.type"],
    ["xhttp transport", with_({ transport: { type: "xhttp", path: "/x" } }), "transport.type"],
    ["uTLS fingerprint", with_({ security: { type: "tls", fingerprint: "chrome" } }), "security.fingerprint"],
    [
      "2022-blake3 shadowsocks",
      with_({
        protocol: "shadowsocks",
        security: { type: "none" },
        shadowsocks: { method: "2022-blake3-aes-256-gcm", serverKey: SS_SERVER_KEY },
      }),
      "shadowsocks.method",
    ],
    [
      "xchacha20 shadowsocks",
      with_({
        protocol: "shadowsocks",
        security: { type: "none" },
        shadowsocks: { method: "xchacha20-ietf-poly1305" },
      }),
      "shadowsocks.method",
    ],
  ])("%s", (_feature, inbound, field) => {
    expect(fields("v2ray", inbound)).toContain(field);
    const message = validateInbound("v2ray", inbound).find((e) => e.field === field)?.message;
    expect(message).toMatch(/v2ray 4\.x/);
    expect(fields("xray", inbound)).toEqual([]);
  });
});

describe("validateInbound: general rules", () => {
  it("accepts a plain vless/tls inbound on both cores", () => {
    expect(fields("xray", base)).toEqual([]);
    expect(fields("v2ray", base)).toEqual([]);
  });

  it.each([0, 65536, 80.5, -1])("refuses port %s", (port) => {
    expect(fields("xray", with_({ port }))).toEqual(["port"]);
  });

  it.each<[string, Partial<InboundDefinition>, string[]]>([
    ["ws without path", { transport: { type: "ws" } }, ["transport.path"]],
    ["path without leading slash", { transport: { type: "ws", path: "ws" } }, ["transport.path"]],
    ["grpc without serviceName", { transport: { type: "grpc" } }, ["transport.serviceName"]],
    [
      "serviceName on ws",
      { transport: { type: "ws", path: "/w", serviceName: "x" } },
      ["transport.serviceName"],
    ],
    [
      "headerType on ws",
      { transport: { type: "ws", path: "/w", headerType: "http" } },
      ["transport.headerType"],
    ],
    [
      "bad xhttp mode",
      { transport: { type: "xhttp", path: "/x", mode: "fast" as never } },
      ["transport.mode"],
    ],
    ["REALITY without settings", { security: { type: "reality" } }, ["security.reality"]],
    [
      "REALITY with bad key and shortId",
      { security: { type: "reality", reality: { publicKey: "short", shortId: "xyz", serverName: "a" } } },
      ["security.reality.publicKey", "security.reality.shortId"],
    ],
    ["REALITY over ws", { security: reality, transport: { type: "ws", path: "/w" } }, ["transport.type"]],
    ["REALITY on vmess", { protocol: "vmess", security: reality }, ["security.type"]],
    ["vision over ws", { flow: "xtls-rprx-vision", transport: { type: "ws", path: "/w" } }, ["flow"]],
    ["vision without tls", { flow: "xtls-rprx-vision", security: { type: "none" } }, ["flow"]],
    ["vision on vmess", { protocol: "vmess", flow: "xtls-rprx-vision" }, ["flow"]],
    ["trojan without tls", { protocol: "trojan", security: { type: "none" } }, ["security.type"]],
    ["unknown fingerprint", { security: { type: "tls", fingerprint: "netscape" } }, ["security.fingerprint"]],
    ["unknown alpn", { security: { type: "tls", alpn: ["h2", "spdy/3"] } }, ["security.alpn[1]"]],
    ["sni without tls", { security: { type: "none", sni: "a" } }, ["security.type"]],
    [
      "shadowsocks without method",
      { protocol: "shadowsocks", security: { type: "none" } },
      ["shadowsocks.method"],
    ],
    [
      "2022 without server key",
      {
        protocol: "shadowsocks",
        security: { type: "none" },
        shadowsocks: { method: "2022-blake3-aes-128-gcm" },
      },
      ["shadowsocks.serverKey"],
    ],
    [
      "2022 with a key of the wrong length",
      {
        protocol: "shadowsocks",
        security: { type: "none" },
        shadowsocks: { method: "2022-blake3-aes-128-gcm", serverKey: SS_SERVER_KEY },
      },
      ["shadowsocks.serverKey"],
    ],
    [
      "shadowsocks over tls",
      { protocol: "shadowsocks", shadowsocks: { method: "aes-128-gcm" } },
      ["security.type"],
    ],
    ["empty tag", { tag: "" }, ["tag"]],
    [
      "host with bad address and port",
      { hosts: [{ address: "a b", port: 70000 }] },
      ["hosts[0].address", "hosts[0].port"],
    ],
    [
      "host with unknown remark variable",
      { hosts: [{ address: "a", remark: "{NODE} {FOO}" }] },
      ["hosts[0].remark"],
    ],
  ])("%s", (_case, patch, expected) => {
    expect(fields("xray", with_(patch))).toEqual(expected);
  });

  it("the remark error names the unknown variable", () => {
    const [error] = validateInbound(
      "xray",
      with_({ hosts: [{ address: "a", remark: "{USERNAME} {DAYS}" }] }),
    );
    expect(error?.message).toContain("{DAYS}");
  });
});

describe("validateWireguardEndpoint", () => {
  const endpoint = { host: "wg.example.com", port: 51820, publicKey: WG_SERVER_PUBLIC_KEY };

  it("accepts a complete endpoint", () => {
    expect(
      validateWireguardEndpoint({ ...endpoint, allowedIps: ["10.0.0.0/8", "fd00::/8"], mtu: 1420 }),
    ).toEqual([]);
  });

  it("refuses a bad key, port, CIDR and mtu, naming each", () => {
    const errors = validateWireguardEndpoint({
      host: "wg.example.com",
      port: 0,
      publicKey: "not-a-key",
      allowedIps: ["everything"],
      mtu: 100,
    });
    expect(errors.map((e) => e.field)).toEqual([
      "wireguard.port",
      "wireguard.publicKey",
      "wireguard.allowedIps[0]",
      "wireguard.mtu",
    ]);
  });
});
