import { DEFAULT_REMARK_TEMPLATE, renderRemark } from "./remark-template";
import type {
  Core,
  FieldError,
  HostOverride,
  InboundDefinition,
  Protocol,
  RenderNode,
  SecurityType,
  Subscriber,
  TransportType,
} from "./types";
import { validateInbound, validateWireguardEndpoint } from "./validate-inbound";

/**
 * One dialable Xray/v2ray proxy with every default applied: the single shape all renderers read,
 * so the formats cannot disagree about what a host override or a default means.
 * Unused fields are "" rather than undefined to keep renderers and round-trip tests simple.
 */
export interface XrayProxy {
  kind: "xray";
  /** Unique within one rendered document; clients use it as the proxy's display name. */
  name: string;
  nodeId: string;
  core: Core;
  protocol: Protocol;
  address: string;
  port: number;
  /** vless / vmess. */
  uuid: string;
  /** trojan / shadowsocks (for 2022 methods already "serverKey:userKey"). */
  password: string;
  /** shadowsocks cipher. */
  method: string;
  flow: string;
  transport: {
    type: TransportType;
    path: string;
    host: string;
    serviceName: string;
    headerType: "none" | "http";
    /** xhttp only ("auto" by default), "" otherwise. */
    mode: string;
  };
  security: {
    type: SecurityType;
    sni: string;
    alpn: string[];
    fingerprint: string;
    allowInsecure: boolean;
    publicKey: string;
    shortId: string;
    spiderX: string;
  };
}

export interface WireguardProxy {
  kind: "wireguard";
  name: string;
  nodeId: string;
  nodeName: string;
  address: string;
  port: number;
  serverPublicKey: string;
  privateKey: string;
  /** "" when none. */
  presharedKey: string;
  addresses: string[];
  allowedIps: string[];
  dns: string[];
  mtu: number | null;
  persistentKeepalive: number | null;
}

export type ResolvedProxy = XrayProxy | WireguardProxy;

export interface SkippedEntry {
  nodeId: string;
  /** Inbound tag, or "wireguard" for a node's WireGuard endpoint. */
  tag: string;
  errors: FieldError[];
}

export interface ResolveOptions {
  now: Date;
  /** Remark template for hosts without their own; defaults to DEFAULT_REMARK_TEMPLATE. */
  remarkTemplate?: string;
}

export const DEFAULT_ALLOWED_IPS = ["0.0.0.0/0", "::/0"];

/** Appends " 2", " 3", … until the name is free, then reserves it. */
export function claimUniqueName(name: string, taken: Set<string>): string {
  const base = name.length > 0 ? name : "proxy";
  let candidate = base;
  for (let n = 2; taken.has(candidate); n += 1) candidate = `${base} ${n}`;
  taken.add(candidate);
  return candidate;
}

function protocolCredentials(subscriber: Subscriber, inbound: InboundDefinition) {
  const c = subscriber.credentials;
  switch (inbound.protocol) {
    case "vless":
    case "vmess":
      return { uuid: c.xrayUuid, password: "", method: "" };
    case "trojan":
      return { uuid: "", password: c.trojanPassword, method: "" };
    case "shadowsocks": {
      const ss = inbound.shadowsocks;
      const password = ss?.serverKey ? `${ss.serverKey}:${c.shadowsocksPassword}` : c.shadowsocksPassword;
      return { uuid: "", password, method: ss?.method ?? "" };
    }
  }
}

function xrayProxy(node: RenderNode, inbound: InboundDefinition, host: HostOverride, subscriber: Subscriber) {
  const { transport: t, security: s } = inbound;
  const v2ray = node.core === "v2ray";
  const reality = s.type === "reality" && s.reality ? s.reality : null;
  // v2ray 4.x lacks these; validation already refused them, this keeps a bug elsewhere from leaking them.
  const xrayOnly = (value: string) => (v2ray ? "" : value);
  const proxy: XrayProxy = {
    kind: "xray",
    name: "",
    nodeId: node.id,
    core: node.core,
    protocol: inbound.protocol,
    address: host.address,
    port: host.port ?? inbound.port,
    ...protocolCredentials(subscriber, inbound),
    flow: xrayOnly(inbound.flow ?? ""),
    transport: {
      type: t.type,
      path: host.path ?? t.path ?? "",
      host: host.host ?? t.host ?? "",
      serviceName: t.type === "grpc" ? xrayOnly(t.serviceName ?? "") : "",
      headerType: t.type === "tcp" && t.headerType === "http" ? "http" : "none",
      mode: t.type === "xhttp" ? (t.mode ?? "auto") : "",
    },
    security: {
      type: s.type,
      sni: s.type === "none" ? "" : (host.sni ?? (reality ? reality.serverName : (s.sni ?? ""))),
      alpn: s.type === "tls" ? [...(s.alpn ?? [])] : [],
      fingerprint: xrayOnly(s.type === "none" ? "" : (s.fingerprint ?? (reality ? "chrome" : ""))),
      allowInsecure: s.type === "tls" && s.allowInsecure === true,
      publicKey: xrayOnly(reality?.publicKey ?? ""),
      shortId: xrayOnly(reality?.shortId ?? ""),
      spiderX: xrayOnly(reality?.spiderX ?? ""),
    },
  };
  return proxy;
}

/**
 * Turns a subscriber and the nodes they may use into the proxies of their documents, honouring
 * the subscriber's engines. Invalid inbounds/endpoints are skipped and reported, not thrown: one
 * misconfigured inbound must not take down every subscription on the node.
 */
export function resolveProxies(
  subscriber: Subscriber,
  nodes: readonly RenderNode[],
  options: ResolveOptions,
) {
  const proxies: ResolvedProxy[] = [];
  const skipped: SkippedEntry[] = [];
  const taken = new Set<string>();
  const defaultTemplate = options.remarkTemplate ?? DEFAULT_REMARK_TEMPLATE;
  const wantsXray = subscriber.engines.includes("xray");
  const wg = subscriber.engines.includes("wireguard") ? subscriber.credentials.wireguard : null;

  for (const node of nodes) {
    for (const inbound of wantsXray ? node.inbounds : []) {
      const errors = validateInbound(node.core, inbound);
      if (errors.length > 0) {
        skipped.push({ nodeId: node.id, tag: inbound.tag, errors });
        continue;
      }
      const hosts = inbound.hosts && inbound.hosts.length > 0 ? inbound.hosts : [{ address: node.address }];
      for (const host of hosts) {
        const proxy = xrayProxy(node, inbound, host, subscriber);
        const remark = renderRemark(host.remark ?? defaultTemplate, {
          subscriber,
          now: options.now,
          nodeName: node.name,
          protocol: inbound.protocol.toUpperCase(),
          transport: inbound.transport.type,
          security: inbound.security.type,
        });
        proxy.name = claimUniqueName(remark, taken);
        proxies.push(proxy);
      }
    }
    if (!wg || !node.wireguard) continue;
    const errors = validateWireguardEndpoint(node.wireguard);
    if (errors.length > 0) {
      skipped.push({ nodeId: node.id, tag: "wireguard", errors });
      continue;
    }
    const ep = node.wireguard;
    const remark = renderRemark(defaultTemplate, {
      subscriber,
      now: options.now,
      nodeName: node.name,
      protocol: "WIREGUARD",
      transport: "udp",
      security: "none",
    });
    proxies.push({
      kind: "wireguard",
      name: claimUniqueName(remark, taken),
      nodeId: node.id,
      nodeName: node.name,
      address: ep.host,
      port: ep.port,
      serverPublicKey: ep.publicKey,
      privateKey: wg.privateKey,
      presharedKey: wg.presharedKey ?? "",
      addresses: [...wg.addresses],
      allowedIps: [...(ep.allowedIps ?? DEFAULT_ALLOWED_IPS)],
      dns: [...(ep.dns ?? [])],
      mtu: ep.mtu ?? null,
      persistentKeepalive: ep.persistentKeepalive ?? null,
    });
  }
  return { proxies, skipped };
}
