import { describe, expect, it } from "vitest";
import { classifyCoreError } from "./api-client";
import { buildCoreConfig, perUserInboundTag } from "./base-config";
import { type CoreFlavor, methodPath, V2RAY4, XRAY } from "./flavor";

interface CoreJson {
  inbounds: Array<{ tag: string; protocol: string; settings: unknown; streamSettings: unknown }>;
  routing: { rules: unknown[] };
  stats: unknown;
  policy: { levels: Record<string, unknown> };
  outbounds: Array<{ protocol: string }>;
}
const build = (flavor: CoreFlavor, inb: Parameters<typeof buildCoreConfig>[1]["inbounds"]) =>
  buildCoreConfig(flavor, { apiPort: 10085, inbounds: inb }) as unknown as CoreJson;

const inbounds = [
  {
    tag: "vless-ws",
    protocol: "vless" as const,
    port: 443,
    transport: "ws" as const,
    wsPath: "/v",
    tls: { certificateFile: "/c.pem", keyFile: "/k.pem" },
  },
  { tag: "ss", protocol: "shadowsocks" as const, port: 8388, shadowsocksMethod: "aes-256-gcm" },
];

describe("core config", () => {
  it("wires a loopback-only API inbound routed to the commander, stats, and per-user counters at level 0", () => {
    const config = build(V2RAY4, inbounds);
    expect(config.inbounds[0]).toEqual({
      tag: "api",
      listen: "127.0.0.1",
      port: 10085,
      protocol: "dokodemo-door",
      settings: { address: "127.0.0.1" },
    });
    expect(config.routing.rules).toEqual([{ type: "field", inboundTag: ["api"], outboundTag: "api" }]);
    expect(config.stats).toEqual({});
    expect(config.policy.levels["0"]).toEqual({ statsUserUplink: true, statsUserDownlink: true });
    expect(config.outbounds.map((o) => o.protocol)).toEqual(["freedom", "blackhole"]);
  });
  it("renders ws + tls stream settings with the certificate paths, and no users", () => {
    const config = build(V2RAY4, inbounds);
    const vless = config.inbounds[1];
    expect(vless?.settings).toEqual({ clients: [], decryption: "none" });
    expect(vless?.streamSettings).toEqual({
      network: "ws",
      wsSettings: { path: "/v" },
      security: "tls",
      tlsSettings: { certificates: [{ certificateFile: "/c.pem", keyFile: "/k.pem" }] },
    });
  });
  it("writes stream settings rendered by the control plane verbatim (REALITY, gRPC) with sniffing", () => {
    const raw = { network: "grpc", security: "reality", realitySettings: { dest: "example.com:443" } };
    const sniffing = { enabled: true, destOverride: ["tls"] };
    const config = build(XRAY, [
      {
        tag: "r",
        protocol: "vless",
        port: 443,
        rawStreamSettings: raw,
        sniffing,
        vlessFlow: "xtls-rprx-vision",
      },
    ]);
    expect(config.inbounds[1]).toMatchObject({ tag: "r", streamSettings: raw, sniffing });
  });

  it("leaves v2ray Shadowsocks out of the file (one API inbound per user) but keeps it for Xray", () => {
    expect(build(V2RAY4, inbounds).inbounds).toHaveLength(2);
    const xray = build(XRAY, inbounds).inbounds;
    expect(xray[2]).toMatchObject({ tag: "ss", protocol: "shadowsocks", settings: { clients: [] } });
  });
  it("rejects duplicate tags, the reserved api tag, and XTLS flow on v2ray", () => {
    expect(() => buildCoreConfig(V2RAY4, { apiPort: 1, inbounds: [inbounds[0]!, inbounds[0]!] })).toThrow(
      /duplicate/,
    );
    expect(() =>
      buildCoreConfig(V2RAY4, { apiPort: 1, inbounds: [{ ...inbounds[0]!, tag: "api" }] }),
    ).toThrow(/duplicate/);
    expect(() =>
      buildCoreConfig(V2RAY4, { apiPort: 1, inbounds: [{ ...inbounds[0]!, vlessFlow: "xtls-rprx-vision" }] }),
    ).toThrow(/XTLS/);
  });
  it("gives per-user inbounds unique tags", () => {
    expect(perUserInboundTag(inbounds[1]!, "alice")).toBe("ss/alice");
  });
});

describe("gRPC paths and errors", () => {
  it("uses each core's package prefix in the method path", () => {
    expect(methodPath(V2RAY4, "handler", "AlterInbound")).toBe(
      "/v2ray.core.app.proxyman.command.HandlerService/AlterInbound",
    );
    expect(methodPath(XRAY, "stats", "QueryStats")).toBe("/xray.app.stats.command.StatsService/QueryStats");
  });
  it("classifies the cores' error texts (idempotent add/remove vs real failures)", () => {
    const err = (message: string, code = 2) => Object.assign(new Error(`2 UNKNOWN: ${message}`), { code });
    expect(
      classifyCoreError(err("v2ray.com/core/proxy/vmess/inbound: User erin@probe already exists.")),
    ).toBe("already-exists");
    expect(classifyCoreError(err("app/proxyman/inbound: existing tag found: x"))).toBe("already-exists");
    expect(classifyCoreError(err("v2ray.com/core/proxy/vmess/inbound: User erin@probe not found."))).toBe(
      "user-not-found",
    );
    expect(
      classifyCoreError(err("failed to get handler: nosuchtag > inbound: handler not found: nosuchtag")),
    ).toBe("no-handler");
    expect(classifyCoreError(err("v2ray.com/core/app/proxyman/command: proxy is not a UserManager"))).toBe(
      "no-handler",
    );
    expect(classifyCoreError(err("not enough information for making a decision"))).toBe("inbound-not-found");
    expect(classifyCoreError(err("connect ECONNREFUSED", 14))).toBe("unavailable");
    expect(classifyCoreError(err("Email must not be empty."))).toBe("other");
  });
});
