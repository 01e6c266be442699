import type { ResolvedProxy, WireguardProxy, XrayProxy } from "./resolve-proxies";

// mihomo (Clash-Meta) proxy entries; field names from MetaCubeX/mihomo adapter/outbound/*.go.

type Entry = Record<string, unknown>;

const withoutPrefix = (cidr: string) => cidr.split("/")[0] ?? cidr;

/** mihomo nests the transport under `<network>-opts`; httpupgrade is ws with a flag. */
function transportFields(p: XrayProxy): Entry | null {
  const t = p.transport;
  const headers = t.host ? { Host: t.host } : undefined;
  switch (t.type) {
    case "tcp":
      if (t.headerType !== "http") return { network: "tcp" };
      // trojan has no http-opts in mihomo; the caller drops it.
      if (p.protocol === "trojan") return null;
      return {
        network: "http",
        "http-opts": {
          method: "GET",
          path: [t.path || "/"],
          ...(t.host ? { headers: { Host: [t.host] } } : {}),
        },
      };
    case "ws":
      return { network: "ws", "ws-opts": { path: t.path, ...(headers ? { headers } : {}) } };
    case "httpupgrade":
      return {
        network: "ws",
        "ws-opts": { path: t.path, ...(headers ? { headers } : {}), "v2ray-http-upgrade": true },
      };
    case "grpc":
      return { network: "grpc", "grpc-opts": { "grpc-service-name": t.serviceName } };
    case "xhttp":
      // Only mihomo's vless speaks xhttp.
      if (p.protocol !== "vless") return null;
      return {
        network: "xhttp",
        "xhttp-opts": { path: t.path, ...(t.host ? { host: t.host } : {}), mode: t.mode },
      };
  }
}

function tlsFields(p: XrayProxy): Entry {
  const s = p.security;
  if (s.type === "none") return {};
  // trojan names the server name `sni`; vless/vmess call it `servername`.
  const sniKey = p.protocol === "trojan" ? "sni" : "servername";
  // mihomo's trojan is always TLS and has no `tls` key.
  const fields: Entry = p.protocol === "trojan" ? {} : { tls: true };
  if (s.sni) fields[sniKey] = s.sni;
  if (s.alpn.length > 0) fields.alpn = [...s.alpn];
  if (s.allowInsecure) fields["skip-cert-verify"] = true;
  if (s.fingerprint) fields["client-fingerprint"] = s.fingerprint;
  if (s.type === "reality") {
    fields["reality-opts"] = { "public-key": s.publicKey, ...(s.shortId ? { "short-id": s.shortId } : {}) };
  }
  return fields;
}

function xrayEntry(p: XrayProxy): Entry | null {
  const base: Entry = { name: p.name, type: "", server: p.address, port: p.port, udp: true };
  if (p.protocol === "shadowsocks") {
    return { ...base, type: "ss", cipher: p.method, password: p.password };
  }
  const transport = transportFields(p);
  if (transport === null) return null;
  switch (p.protocol) {
    case "vless":
      return {
        ...base,
        type: "vless",
        uuid: p.uuid,
        ...transport,
        ...tlsFields(p),
        ...(p.flow ? { flow: p.flow } : {}),
      };
    case "vmess":
      return {
        ...base,
        type: "vmess",
        uuid: p.uuid,
        alterId: 0,
        cipher: "auto",
        ...transport,
        ...tlsFields(p),
      };
    case "trojan":
      return { ...base, type: "trojan", password: p.password, ...transport, ...tlsFields(p) };
  }
}

function wireguardEntry(p: WireguardProxy): Entry {
  const v4 = p.addresses.find((a) => !a.includes(":"));
  const v6 = p.addresses.find((a) => a.includes(":"));
  const entry: Entry = {
    name: p.name,
    type: "wireguard",
    server: p.address,
    port: p.port,
    // mihomo's schema wants bare addresses here, not prefixes.
    ...(v4 ? { ip: withoutPrefix(v4) } : {}),
    ...(v6 ? { ipv6: withoutPrefix(v6) } : {}),
    "private-key": p.privateKey,
    "public-key": p.serverPublicKey,
    ...(p.presharedKey ? { "pre-shared-key": p.presharedKey } : {}),
    "allowed-ips": [...p.allowedIps],
    udp: true,
  };
  if (p.mtu !== null) entry.mtu = p.mtu;
  if (p.persistentKeepalive !== null) entry["persistent-keepalive"] = p.persistentKeepalive;
  if (p.dns.length > 0) Object.assign(entry, { "remote-dns-resolve": true, dns: [...p.dns] });
  return entry;
}

/** The mihomo entry for a proxy, or null when mihomo cannot express it (then it is left out). */
export function clashProxy(p: ResolvedProxy): Entry | null {
  return p.kind === "wireguard" ? wireguardEntry(p) : xrayEntry(p);
}

export function clashProxies(proxies: readonly ResolvedProxy[]): Entry[] {
  return proxies.map(clashProxy).filter((entry): entry is Entry => entry !== null);
}
