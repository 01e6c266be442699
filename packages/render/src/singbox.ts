import type { ResolvedProxy, WireguardProxy, XrayProxy } from "./resolve-proxies";

// sing-box outbounds and endpoints; field names from SagerNet/sing-box option/*.go (1.11+ layout:
// WireGuard is an endpoint, the legacy wireguard outbound is gone since 1.13).

type Json = Record<string, unknown>;

function tls(p: XrayProxy): Json | undefined {
  const s = p.security;
  if (s.type === "none") return undefined;
  const out: Json = { enabled: true };
  if (s.sni) out.server_name = s.sni;
  if (s.allowInsecure) out.insecure = true;
  if (s.alpn.length > 0) out.alpn = [...s.alpn];
  if (s.fingerprint) out.utls = { enabled: true, fingerprint: s.fingerprint };
  if (s.type === "reality") out.reality = { enabled: true, public_key: s.publicKey, short_id: s.shortId };
  return out;
}

/** undefined = plain tcp; null = sing-box has no equivalent (xhttp), so the proxy is left out. */
function transport(p: XrayProxy): Json | undefined | null {
  const t = p.transport;
  switch (t.type) {
    case "tcp":
      if (t.headerType !== "http") return undefined;
      // Without TLS sing-box's "http" transport speaks plain HTTP/1.1, the same disguise as Xray's
      // tcp http header (this is how Marzban maps it too).
      return { type: "http", path: t.path || "/", method: "GET", ...(t.host ? { host: [t.host] } : {}) };
    case "ws":
      return { type: "ws", path: t.path, ...(t.host ? { headers: { Host: t.host } } : {}) };
    case "httpupgrade":
      return { type: "httpupgrade", path: t.path, ...(t.host ? { host: t.host } : {}) };
    case "grpc":
      return { type: "grpc", service_name: t.serviceName };
    case "xhttp":
      return null;
  }
}

function xrayOutbound(p: XrayProxy): Json | null {
  const base: Json = { type: "", tag: p.name, server: p.address, server_port: p.port };
  if (p.protocol === "shadowsocks")
    return { ...base, type: "shadowsocks", method: p.method, password: p.password };
  const tr = transport(p);
  if (tr === null) return null;
  const tail: Json = {};
  const tlsObject = tls(p);
  if (tlsObject) tail.tls = tlsObject;
  if (tr) tail.transport = tr;
  switch (p.protocol) {
    case "vless":
      // xudp is what Xray servers expect for UDP over VLESS.
      return {
        ...base,
        type: "vless",
        uuid: p.uuid,
        ...(p.flow ? { flow: p.flow } : {}),
        packet_encoding: "xudp",
        ...tail,
      };
    case "vmess":
      return { ...base, type: "vmess", uuid: p.uuid, security: "auto", alter_id: 0, ...tail };
    case "trojan":
      return { ...base, type: "trojan", password: p.password, ...tail };
  }
}

export function wireguardEndpoint(p: WireguardProxy): Json {
  const peer: Json = {
    address: p.address,
    port: p.port,
    public_key: p.serverPublicKey,
    allowed_ips: [...p.allowedIps],
  };
  if (p.presharedKey) peer.pre_shared_key = p.presharedKey;
  if (p.persistentKeepalive !== null) peer.persistent_keepalive_interval = p.persistentKeepalive;
  return {
    type: "wireguard",
    tag: p.name,
    ...(p.mtu !== null ? { mtu: p.mtu } : {}),
    address: [...p.addresses],
    private_key: p.privateKey,
    peers: [peer],
  };
}

/** Splits proxies into sing-box `outbounds` and `endpoints`, dropping what sing-box cannot express. */
export function singboxEntries(proxies: readonly ResolvedProxy[]): { outbounds: Json[]; endpoints: Json[] } {
  const outbounds: Json[] = [];
  const endpoints: Json[] = [];
  for (const p of proxies) {
    if (p.kind === "wireguard") endpoints.push(wireguardEndpoint(p));
    else {
      const outbound = xrayOutbound(p);
      if (outbound) outbounds.push(outbound);
    }
  }
  return { outbounds, endpoints };
}
