import type {
  Core,
  InboundDefinition,
  Protocol,
  RenderNode,
  SecuritySettings,
  Subscriber,
  TransportSettings,
} from "./types";
import { validateInbound } from "./validate-inbound";

// Deterministic inputs shared by the unit tests and the e2e suite: fixed ids, keys and dates, so
// golden files only change when rendering does. Keys were made once with `wg genkey`; they guard
// nothing.

export const NOW = new Date("2026-03-01T12:00:00Z");
const GIB = 1024 ** 3;

export const WG_CLIENT_PRIVATE_KEY = "yMQ/QCZSAxA1zZRZpFLRS4vYoeA3pSIzpvr6OXC5slA=";
export const WG_PRESHARED_KEY = "wIVWE20kNV2JZOs323wYpZ4lIjFqSb79VKwaiK6NgnY=";
export const WG_SERVER_PUBLIC_KEY = "2D+qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8=";
export const REALITY_PUBLIC_KEY = "2D-qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8";
/** 32 random bytes in base64: valid both as a classic password and as a 2022-blake3-aes-256 key. */
export const SS_USER_KEY = "FMXq+Mx6stl/ngqCqfE9XEWKrUG8tu/Pjgl+Iff3l5U=";
export const SS_SERVER_KEY = "4F7/RmkNs+1x9K1wDv89/daMZD/eR9SxlctKbynhS8E=";

export function makeSubscriber(overrides: Partial<Subscriber> = {}): Subscriber {
  return {
    displayName: "alice",
    status: "active",
    usage: {
      upload: 1.5 * GIB,
      download: 10 * GIB,
      total: 100 * GIB,
      expireAt: new Date("2026-04-15T00:00:00Z"),
    },
    credentials: {
      xrayUuid: "7f3c1a52-9b4e-4d2a-8c61-2f0e5d9a7b13",
      trojanPassword: "tr0jan-Pass_word",
      shadowsocksPassword: SS_USER_KEY,
      wireguard: {
        privateKey: WG_CLIENT_PRIVATE_KEY,
        presharedKey: WG_PRESHARED_KEY,
        addresses: ["10.8.0.2/32", "fd42:42:42::2/128"],
      },
    },
    engines: ["xray", "wireguard"],
    ...overrides,
  };
}

const TRANSPORTS: Record<string, TransportSettings> = {
  tcp: { type: "tcp" },
  tcp_http: { type: "tcp", headerType: "http", path: "/index.html", host: "cdn.example.com" },
  ws: { type: "ws", path: "/ws", host: "cdn.example.com" },
  grpc: { type: "grpc", serviceName: "grpc-svc" },
  httpupgrade: { type: "httpupgrade", path: "/up", host: "cdn.example.com" },
  xhttp: { type: "xhttp", path: "/xh", host: "cdn.example.com", mode: "auto" },
};

function securityVariants(core: Core): Record<string, SecuritySettings> {
  return {
    none: { type: "none" },
    tls: {
      type: "tls",
      sni: "edge.example.com",
      alpn: ["h2", "http/1.1"],
      ...(core === "xray" ? { fingerprint: "chrome" } : {}),
    },
    reality: {
      type: "reality",
      fingerprint: "firefox",
      reality: {
        publicKey: REALITY_PUBLIC_KEY,
        shortId: "0123456789abcdef",
        spiderX: "/",
        serverName: "www.example.org",
      },
    },
  };
}

export interface Combination {
  /** e.g. "vless-ws-tls", "vless-tcp-reality-vision", "shadowsocks-2022-blake3-aes-256-gcm". */
  id: string;
  inbound: InboundDefinition;
}

/**
 * Every protocol × transport × security (× vision flow, × shadowsocks method) the core accepts:
 * generated broadly, then filtered through validateInbound, so the list tracks the validator.
 */
export function validCombinations(core: Core, address = defaultAddress(core)): Combination[] {
  const out: Combination[] = [];
  let port = core === "xray" ? 20000 : 30000;
  const add = (id: string, inbound: Omit<InboundDefinition, "tag" | "port" | "hosts">) => {
    port += 1;
    const full: InboundDefinition = { ...inbound, tag: id, port, hosts: [{ address, remark: id }] };
    if (validateInbound(core, full).length === 0) out.push({ id, inbound: full });
  };
  const protocols: Protocol[] = ["vless", "vmess", "trojan"];
  for (const protocol of protocols) {
    for (const [tName, transport] of Object.entries(TRANSPORTS)) {
      for (const [sName, security] of Object.entries(securityVariants(core))) {
        add(`${protocol}-${tName}-${sName}`, { protocol, transport, security });
        add(`${protocol}-${tName}-${sName}-vision`, {
          protocol,
          transport,
          security,
          flow: "xtls-rprx-vision",
        });
      }
    }
  }
  for (const method of ["aes-128-gcm", "chacha20-ietf-poly1305", "2022-blake3-aes-256-gcm"] as const) {
    const serverKey = method.startsWith("2022") ? { serverKey: SS_SERVER_KEY } : {};
    add(`shadowsocks-${method}`, {
      protocol: "shadowsocks",
      transport: { type: "tcp" },
      security: { type: "none" },
      shadowsocks: { method, ...serverKey },
    });
  }
  return out;
}

function defaultAddress(core: Core): string {
  return core === "xray" ? "de.example.com" : "203.0.113.10";
}

/** A node carrying every valid combination, each inbound with one host named after the combination. */
export function combinationNode(core: Core, address = defaultAddress(core)): RenderNode {
  return {
    id: `node_${core}`,
    name: core === "xray" ? "Frankfurt" : "Legacy",
    core,
    address,
    inbounds: validCombinations(core, address).map(({ inbound }) => inbound),
    wireguard: null,
  };
}

export function wireguardNode(overrides: Partial<RenderNode> = {}): RenderNode {
  return {
    id: "node_wg",
    name: "Amsterdam WG",
    core: "xray",
    address: "nl.example.com",
    inbounds: [],
    wireguard: {
      host: "wg.example.com",
      port: 51820,
      publicKey: WG_SERVER_PUBLIC_KEY,
      dns: ["1.1.1.1", "2606:4700:4700::1111"],
      mtu: 1420,
      persistentKeepalive: 25,
    },
    ...overrides,
  };
}
