// NodeConfig (rendered by the control plane for this node) → the drivers' base configs. Pure.
//
// xray_inbounds_json is a JSON array of ordinary Xray inbound objects without clients, e.g.
//   {"tag":"vless-tls","port":443,"protocol":"vless","settings":{"decryption":"none"},
//    "streamSettings":{"network":"ws","security":"tls","wsSettings":{"path":"/x"},
//                      "tlsSettings":{"certificates":[{"certificateFile":"…","keyFile":"…"}]}}}
// The driver writes its own config around these (API inbound, stats, policy); each inbound's
// streamSettings and sniffing go in verbatim. VLESS flow is per client in Xray; the control plane
// renders it as an inbound-level `settings.flow`, which the driver gives to every client it adds.
// Shadowsocks keeps `settings.method` (the cipher of every user's account).
//
// WireGuard: the first interface of the node config carries the node's addresses, listen port and
// MTU; the driver names its interfaces <AGENT_WG_INTERFACE_PREFIX>0..n itself (more than one once a
// device is full), so the control plane's interface name is informational.

import type { NodeConfig } from "@vpnpanel/proto";
import type { WireguardBaseConfig } from "../engines/wireguard/wireguard-driver";
import type { XrayBaseConfig, XrayInboundDefinition, XrayInboundProtocol } from "../engines/xray/base-config";

const protocols: readonly XrayInboundProtocol[] = ["vless", "vmess", "trojan", "shadowsocks"];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function parseInbound(raw: unknown, position: number): XrayInboundDefinition {
  if (!isObject(raw)) throw new Error(`inbound #${position} is not an object`);
  const tag = str(raw.tag);
  if (!tag) throw new Error(`inbound #${position} has no tag`);
  const where = `inbound "${tag}"`;
  const protocol = raw.protocol as XrayInboundProtocol;
  if (!protocols.includes(protocol))
    throw new Error(`${where}: unsupported protocol ${JSON.stringify(raw.protocol)}`);
  const port = Number(raw.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${where}: invalid port`);
  const settings = isObject(raw.settings) ? raw.settings : {};
  const stream = isObject(raw.streamSettings) ? raw.streamSettings : {};
  const def: XrayInboundDefinition = { tag, protocol, port };
  const listen = str(raw.listen);
  if (listen) def.listen = listen;

  // The rendered streamSettings go to the core verbatim (REALITY, gRPC, HTTPUpgrade, XHTTP, … are
  // the core's to accept: the control plane validated the inbound for this node's core). The fields
  // below are read as well because the driver's own API calls and checks use them.
  if (isObject(raw.streamSettings)) def.rawStreamSettings = raw.streamSettings;
  if (isObject(raw.sniffing)) def.sniffing = raw.sniffing;
  const network = str(stream.network) ?? "tcp";
  if (network === "ws") {
    def.transport = "ws";
    const ws = isObject(stream.wsSettings) ? stream.wsSettings : {};
    const path = str(ws.path);
    if (path) def.wsPath = path;
    const headers = isObject(ws.headers) ? ws.headers : {};
    const host = str(headers.Host) ?? str(ws.host);
    if (host) def.wsHost = host;
  }
  if (str(stream.security) === "tls") {
    const tls = isObject(stream.tlsSettings) ? stream.tlsSettings : {};
    const certs = Array.isArray(tls.certificates) ? tls.certificates : [];
    const first = certs[0];
    const certificateFile = isObject(first) ? str(first.certificateFile) : undefined;
    const keyFile = isObject(first) ? str(first.keyFile) : undefined;
    if (!certificateFile || !keyFile)
      throw new Error(`${where}: TLS needs certificates[0].certificateFile and keyFile`);
    def.tls = { certificateFile, keyFile };
    const serverName = str(tls.serverName);
    if (serverName) def.tls.serverName = serverName;
    if (Array.isArray(tls.alpn)) def.tls.alpn = tls.alpn.filter((a): a is string => typeof a === "string");
  }

  if (protocol === "shadowsocks") {
    const method = str(settings.method);
    if (!method) throw new Error(`${where}: shadowsocks needs settings.method`);
    def.shadowsocksMethod = method;
    const networks = (str(settings.network) ?? "tcp").split(",").map((n) => n.trim());
    def.shadowsocksNetworks = networks.filter((n): n is "tcp" | "udp" => n === "tcp" || n === "udp");
  }
  if (protocol === "vless") {
    const flow = str(settings.flow);
    if (flow) def.vlessFlow = flow;
  }
  return def;
}

export function parseXrayInbounds(json: string): XrayInboundDefinition[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error("xray_inbounds_json is not valid JSON");
  }
  if (!Array.isArray(parsed)) throw new Error("xray_inbounds_json must be a JSON array");
  return parsed.map(parseInbound);
}

export interface XrayLocalSettings {
  apiPort: number;
  logLevel: NonNullable<XrayBaseConfig["logLevel"]>;
}

/** null = the node config gives this node no Xray inbounds (the core is not run). */
export function xrayBaseConfig(node: NodeConfig, local: XrayLocalSettings): XrayBaseConfig | null {
  const json = node.xrayInboundsJson.trim();
  if (json === "") return null;
  const inbounds = parseXrayInbounds(json);
  if (inbounds.length === 0) return null;
  return { apiPort: local.apiPort, logLevel: local.logLevel, inbounds };
}

export interface WireguardLocalSettings {
  interfacePrefix: string;
  listenPort: number;
  peersPerInterface: number;
}

/** null = no WireGuard interface in the node config. */
export function wireguardBaseConfig(
  node: NodeConfig,
  local: WireguardLocalSettings,
): WireguardBaseConfig | null {
  const first = node.wireguardInterfaces[0];
  if (!first) return null;
  if (first.addresses.length === 0) throw new Error(`wireguard interface "${first.name}" has no address`);
  return {
    interfacePrefix: local.interfacePrefix,
    listenPort: first.listenPort || local.listenPort,
    addresses: [...first.addresses],
    peersPerInterface: local.peersPerInterface,
    ...(first.mtu ? { mtu: first.mtu } : {}),
  };
}
