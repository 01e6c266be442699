import { NO_SERVERS_REASON, placeholderXrayProxy } from "./placeholder";
import type { ResolvedProxy, XrayProxy } from "./resolve-proxies";

// A complete client config for Xray (v2rayN/v2rayNG "custom config") or v2ray 4.x: local socks and
// http inbounds on loopback, the chosen proxy as the first (default) outbound, direct and block.
// For a v2ray-4.x node it uses only what 4.34 parses (checked by `v2ray -test` in the e2e suite).

type Json = Record<string, unknown>;

export interface XrayClientOptions {
  socksPort?: number;
  httpPort?: number;
  /** Loopback by default: a LAN-reachable open proxy is a gift to anyone on the network. */
  listen?: string;
  logLevel?: "debug" | "info" | "warning" | "error" | "none";
}

// Literal CIDRs rather than geoip:private: v2ray/Xray builds without geoip.dat (Debian's) reject the
// config at load time if a rule mentions geoip.
const PRIVATE_CIDRS = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
];

function userSettings(p: XrayProxy): Json {
  const server = { address: p.address, port: p.port };
  switch (p.protocol) {
    case "vless":
      return {
        vnext: [
          { ...server, users: [{ id: p.uuid, encryption: "none", ...(p.flow ? { flow: p.flow } : {}) }] },
        ],
      };
    case "vmess": {
      // alterId exists only in v2ray's schema; 0 selects VMess AEAD there. Xray dropped the field.
      const user =
        p.core === "v2ray" ? { id: p.uuid, alterId: 0, security: "auto" } : { id: p.uuid, security: "auto" };
      return { vnext: [{ ...server, users: [user] }] };
    }
    case "trojan":
      return { servers: [{ ...server, password: p.password }] };
    case "shadowsocks":
      return { servers: [{ ...server, method: p.method, password: p.password }] };
  }
}

function transportSettings(p: XrayProxy): Json {
  const t = p.transport;
  const v2ray = p.core === "v2ray";
  switch (t.type) {
    case "tcp": {
      if (t.headerType !== "http") return {};
      const headers = t.host ? { Host: [t.host] } : {};
      const request = { version: "1.1", method: "GET", path: [t.path || "/"], headers };
      return { tcpSettings: { header: { type: "http", request } } };
    }
    case "ws": {
      // Xray moved the Host header to `host` and warns on headers.Host; v2ray only knows headers.Host.
      const host = t.host ? (v2ray ? { headers: { Host: t.host } } : { host: t.host }) : {};
      return { wsSettings: { path: t.path, ...host } };
    }
    case "grpc":
      return { grpcSettings: { serviceName: t.serviceName, multiMode: false } };
    case "httpupgrade":
      return { httpupgradeSettings: { path: t.path, ...(t.host ? { host: t.host } : {}) } };
    case "xhttp":
      return { xhttpSettings: { path: t.path, ...(t.host ? { host: t.host } : {}), mode: t.mode || "auto" } };
  }
}

function securitySettings(p: XrayProxy): Json {
  const s = p.security;
  if (s.type === "tls") {
    const tls: Json = {};
    if (s.sni) tls.serverName = s.sni;
    if (s.alpn.length > 0) tls.alpn = [...s.alpn];
    if (s.allowInsecure) tls.allowInsecure = true;
    if (s.fingerprint && p.core === "xray") tls.fingerprint = s.fingerprint;
    return { tlsSettings: tls };
  }
  if (s.type === "reality") {
    const reality: Json = {
      serverName: s.sni,
      fingerprint: s.fingerprint || "chrome",
      publicKey: s.publicKey,
    };
    if (s.shortId) reality.shortId = s.shortId;
    if (s.spiderX) reality.spiderX = s.spiderX;
    return { realitySettings: reality };
  }
  return {};
}

export function xrayOutbound(p: XrayProxy, tag = "proxy"): Json {
  return {
    tag,
    protocol: p.protocol,
    settings: userSettings(p),
    streamSettings: {
      network: p.transport.type,
      security: p.security.type,
      ...transportSettings(p),
      ...securitySettings(p),
    },
  };
}

/** One full client config for one proxy. `remarks` is the name v2rayN shows for custom configs. */
export function xrayClientConfig(p: XrayProxy, options: XrayClientOptions = {}): Json {
  const listen = options.listen ?? "127.0.0.1";
  const sniffing = { enabled: true, destOverride: ["http", "tls"] };
  return {
    remarks: p.name,
    log: { loglevel: options.logLevel ?? "warning" },
    inbounds: [
      {
        tag: "socks",
        listen,
        port: options.socksPort ?? 10808,
        protocol: "socks",
        settings: { auth: "noauth", udp: true },
        sniffing,
      },
      { tag: "http", listen, port: options.httpPort ?? 10809, protocol: "http", settings: {}, sniffing },
    ],
    outbounds: [
      xrayOutbound(p),
      { tag: "direct", protocol: "freedom", settings: {} },
      { tag: "block", protocol: "blackhole", settings: {} },
    ],
    routing: {
      domainStrategy: "AsIs",
      rules: [{ type: "field", ip: PRIVATE_CIDRS, outboundTag: "direct" }],
    },
  };
}

/**
 * The `xray-json` subscription body: a JSON array with one full config per proxy, the shape
 * v2rayN ≥ 6.40 and v2rayNG import as a list. WireGuard proxies are left out: those clients
 * take WireGuard as a .conf or wireguard:// link, and v2ray 4.x has no WireGuard outbound.
 */
export function renderXrayJson(proxies: readonly ResolvedProxy[], options: XrayClientOptions = {}): string {
  const xray = proxies.filter((p): p is XrayProxy => p.kind === "xray");
  const list = xray.length > 0 ? xray : [placeholderXrayProxy(NO_SERVERS_REASON)];
  return `${JSON.stringify(
    list.map((p) => xrayClientConfig(p, options)),
    null,
    2,
  )}\n`;
}
