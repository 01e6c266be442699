import type { ResolvedProxy, WireguardProxy, XrayProxy } from "./resolve-proxies";
import { ss2022KeyLength } from "./validate-inbound";

// Link formats: VLESS per XTLS/Xray-core discussion #716, VMess per v2rayN "ver 2" base64 JSON,
// Trojan as trojan-go/v2rayN, Shadowsocks per SIP002, WireGuard as v2rayN's wireguard:// scheme.

const enc = encodeURIComponent;

/** IPv6 literals need brackets in the authority, or the port would be read as part of the address. */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function query(params: ReadonlyArray<readonly [string, string]>): string {
  return params
    .filter(([, value]) => value !== "")
    .map(([key, value]) => `${key}=${enc(value)}`)
    .join("&");
}

/**
 * Query parameters shared by vless:// and trojan://. The proxy of a v2ray-4.x node already has
 * flow/pbk/sid/fp/serviceName blanked; this never re-adds them.
 */
function streamParams(p: XrayProxy): Array<[string, string]> {
  const t = p.transport;
  const s = p.security;
  const params: Array<[string, string]> = [
    ["type", t.type],
    ["security", s.type],
  ];
  if (t.type === "tcp" && t.headerType === "http") params.push(["headerType", "http"]);
  if (t.type !== "grpc") params.push(["path", t.path], ["host", t.host]);
  if (t.type === "grpc") params.push(["serviceName", t.serviceName], ["mode", "gun"]);
  if (t.type === "xhttp") params.push(["mode", t.mode]);
  if (s.type !== "none") {
    params.push(["sni", s.sni], ["fp", s.fingerprint], ["alpn", s.alpn.join(",")]);
    if (s.allowInsecure) params.push(["allowInsecure", "1"]);
  }
  if (s.type === "reality") params.push(["pbk", s.publicKey], ["sid", s.shortId], ["spx", s.spiderX]);
  if (p.flow) params.push(["flow", p.flow]);
  return params;
}

export function vlessLink(p: XrayProxy): string {
  const params = query([["encryption", "none"], ...streamParams(p)]);
  return `vless://${p.uuid}@${hostPort(p.address, p.port)}?${params}#${enc(p.name)}`;
}

export function trojanLink(p: XrayProxy): string {
  return `trojan://${enc(p.password)}@${hostPort(p.address, p.port)}?${query(streamParams(p))}#${enc(p.name)}`;
}

/**
 * v2rayN "ver 2" VMess JSON. Values are strings, as v2rayN writes them; `type` carries the tcp
 * header type, or the gRPC mode, or the xhttp mode — the format overloads it per transport.
 */
export function vmessPayload(p: XrayProxy): Record<string, string> {
  const t = p.transport;
  const s = p.security;
  let type = "none";
  if (t.type === "tcp") type = t.headerType;
  else if (t.type === "grpc") type = "gun";
  else if (t.type === "xhttp") type = t.mode;
  const payload: Record<string, string> = {
    v: "2",
    ps: p.name,
    add: p.address,
    port: String(p.port),
    id: p.uuid,
    aid: "0",
    scy: "auto",
    net: t.type,
    type,
    host: t.type === "grpc" ? "" : t.host,
    path: t.type === "grpc" ? t.serviceName : t.path,
    tls: s.type === "none" ? "" : s.type,
    sni: s.sni,
    alpn: s.alpn.join(","),
    fp: s.fingerprint,
  };
  // Readers disagree on the key (Marzban/older v2rayN: allowInsecure, newer v2rayN: insecure).
  if (s.allowInsecure) Object.assign(payload, { allowInsecure: "1", insecure: "1" });
  return payload;
}

export function vmessLink(p: XrayProxy): string {
  return `vmess://${Buffer.from(JSON.stringify(vmessPayload(p)), "utf8").toString("base64")}`;
}

/**
 * SIP002. Classic AEAD: userinfo is base64url(method:password) without padding. SIP022 forbids
 * base64 for 2022 methods: method and password go percent-encoded in plain text.
 */
export function shadowsocksLink(p: XrayProxy): string {
  const userinfo =
    ss2022KeyLength(p.method) === undefined
      ? Buffer.from(`${p.method}:${p.password}`, "utf8").toString("base64url")
      : `${enc(p.method)}:${enc(p.password)}`;
  return `ss://${userinfo}@${hostPort(p.address, p.port)}#${enc(p.name)}`;
}

export function wireguardLink(p: WireguardProxy): string {
  const params = query([
    ["publickey", p.serverPublicKey],
    ["presharedkey", p.presharedKey],
    ["address", p.addresses.join(",")],
    ["mtu", p.mtu === null ? "" : String(p.mtu)],
  ]);
  return `wireguard://${enc(p.privateKey)}@${hostPort(p.address, p.port)}?${params}#${enc(p.name)}`;
}

export function shareLink(p: ResolvedProxy): string {
  if (p.kind === "wireguard") return wireguardLink(p);
  switch (p.protocol) {
    case "vless":
      return vlessLink(p);
    case "vmess":
      return vmessLink(p);
    case "trojan":
      return trojanLink(p);
    case "shadowsocks":
      return shadowsocksLink(p);
  }
}

/** Plain list, one link per line (the `links-plain` format). */
export function linksPlainBody(proxies: readonly ResolvedProxy[]): string {
  return proxies.map(shareLink).join("\n");
}

/** Standard padded base64 of the newline-joined links on one line, as v2rayN-family clients expect. */
export function linksBase64Body(proxies: readonly ResolvedProxy[]): string {
  return Buffer.from(linksPlainBody(proxies), "utf8").toString("base64");
}
