// The core's JSON config: API wiring, stats, policy and the node's inbounds with empty client lists.
// preload.ts fills the lists when the driver starts a core (docs/adr/0010); a user change to a running
// core goes through the API and never rewrites this file or restarts the core.

import type { CoreFlavor, ShadowsocksMethod } from "./flavor";

export type XrayInboundProtocol = "vless" | "vmess" | "trojan" | "shadowsocks";

export interface XrayInboundDefinition {
  tag: string;
  protocol: XrayInboundProtocol;
  /** Default 0.0.0.0. */
  listen?: string;
  /** Ignored for Shadowsocks on v2ray 4.x, where every user has an inbound on their own port. */
  port: number;
  transport?: "tcp" | "ws";
  wsPath?: string;
  wsHost?: string;
  tls?: { certificateFile: string; keyFile: string; serverName?: string; alpn?: string[] };
  /** Shadowsocks only. */
  shadowsocksMethod?: ShadowsocksMethod | string;
  /** Shadowsocks only; default tcp. */
  shadowsocksNetworks?: Array<"tcp" | "udp">;
  /** VLESS only, Xray only (e.g. xtls-rprx-vision); v2ray 4.34 has no XTLS. */
  vlessFlow?: string;
  /**
   * The inbound's `streamSettings` exactly as the control plane rendered them for this core (REALITY,
   * gRPC, HTTPUpgrade, XHTTP, …). When set they are written to the core config as they are, instead of
   * being built from transport/tls above; the control plane validated them for the node's core.
   */
  rawStreamSettings?: Record<string, unknown>;
  /** Xray `sniffing` object, passed through. */
  sniffing?: Record<string, unknown>;
}

export interface XrayBaseConfig {
  /** The API (dokodemo-door → commander) listens on 127.0.0.1:apiPort only. */
  apiPort: number;
  inbounds: XrayInboundDefinition[];
  logLevel?: "debug" | "info" | "warning" | "error" | "none";
}

export const API_TAG = "api";

/** True when users of this inbound are managed as one inbound per user (v2ray 4.x Shadowsocks). */
export function isPerUserInbound(flavor: CoreFlavor, def: XrayInboundDefinition): boolean {
  return def.protocol === "shadowsocks" && !flavor.multiUserShadowsocks;
}

/** Tag of a v2ray per-user Shadowsocks inbound. Tags must be unique: a reused tag leaks a listener. */
export function perUserInboundTag(def: XrayInboundDefinition, userId: string): string {
  return `${def.tag}/${userId}`;
}

function streamSettings(def: XrayInboundDefinition): Record<string, unknown> {
  const stream: Record<string, unknown> = { network: def.transport ?? "tcp" };
  if (def.transport === "ws") {
    stream.wsSettings = {
      path: def.wsPath ?? "/",
      ...(def.wsHost ? { headers: { Host: def.wsHost } } : {}),
    };
  }
  if (def.tls) {
    stream.security = "tls";
    stream.tlsSettings = {
      ...(def.tls.serverName ? { serverName: def.tls.serverName } : {}),
      ...(def.tls.alpn ? { alpn: def.tls.alpn } : {}),
      certificates: [{ certificateFile: def.tls.certificateFile, keyFile: def.tls.keyFile }],
    };
  } else {
    stream.security = "none";
  }
  return stream;
}

function inboundSettings(flavor: CoreFlavor, def: XrayInboundDefinition): Record<string, unknown> {
  switch (def.protocol) {
    case "vless":
      return { clients: [], decryption: "none" };
    case "vmess":
      return { clients: [] };
    case "trojan":
      return { clients: [] };
    case "shadowsocks":
      // Only reached for Xray: an explicit (empty) clients list selects the multi-user server.
      return {
        clients: [],
        network: (def.shadowsocksNetworks ?? ["tcp"]).join(","),
        method: def.shadowsocksMethod,
      };
  }
  throw new Error(`unsupported protocol for ${flavor.name}`);
}

export function validateInbounds(flavor: CoreFlavor, inbounds: readonly XrayInboundDefinition[]): void {
  const tags = new Set<string>([API_TAG]);
  for (const def of inbounds) {
    if (tags.has(def.tag)) throw new Error(`duplicate inbound tag "${def.tag}"`);
    if (def.tag.includes("/")) throw new Error(`inbound tag "${def.tag}" must not contain "/"`);
    tags.add(def.tag);
    if (def.protocol === "shadowsocks" && !def.shadowsocksMethod) {
      throw new Error(`shadowsocks inbound "${def.tag}" needs shadowsocksMethod`);
    }
    if (flavor.name === "v2ray4" && def.vlessFlow) {
      throw new Error(`inbound "${def.tag}": v2ray 4.x has no XTLS flow`);
    }
  }
}

export function buildCoreConfig(flavor: CoreFlavor, base: XrayBaseConfig): Record<string, unknown> {
  validateInbounds(flavor, base.inbounds);
  const inbounds: Record<string, unknown>[] = [
    // Legacy API wiring (works on v2ray 4.34 and every Xray): the commander registers an outbound tagged
    // "api", and this loopback-only dokodemo-door inbound is routed to it.
    {
      tag: API_TAG,
      listen: "127.0.0.1",
      port: base.apiPort,
      protocol: "dokodemo-door",
      settings: { address: "127.0.0.1" },
    },
  ];
  for (const def of base.inbounds) {
    if (isPerUserInbound(flavor, def)) continue;
    inbounds.push({
      tag: def.tag,
      listen: def.listen ?? "0.0.0.0",
      port: def.port,
      protocol: def.protocol,
      settings: inboundSettings(flavor, def),
      streamSettings: def.rawStreamSettings ?? streamSettings(def),
      ...(def.sniffing ? { sniffing: def.sniffing } : {}),
    });
  }
  return {
    log: { loglevel: base.logLevel ?? "warning", access: "none" },
    api: { tag: API_TAG, services: ["HandlerService", "StatsService"] },
    // Without "stats": {} no counter exists at all.
    stats: {},
    policy: {
      // Per-user counters need the user's level to enable them, and a non-empty email.
      levels: { "0": { statsUserUplink: true, statsUserDownlink: true } },
      system: { statsInboundUplink: false, statsInboundDownlink: false },
    },
    inbounds,
    outbounds: [
      { tag: "direct", protocol: "freedom", settings: {} },
      { tag: "blocked", protocol: "blackhole", settings: {} },
    ],
    routing: { rules: [{ type: "field", inboundTag: [API_TAG], outboundTag: API_TAG }] },
  };
}
