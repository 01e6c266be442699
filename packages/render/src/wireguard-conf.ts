import { wireguardFileName } from "./headers";
import { NO_SERVERS_REASON, placeholderWireguardProxy } from "./placeholder";
import type { ResolvedProxy, WireguardProxy } from "./resolve-proxies";
import { hostPort } from "./share-links";

// wg-quick(8) format. Address/DNS/MTU are wg-quick keys that plain `wg setconf` rejects, which is
// why the e2e suite feeds the file through `wg-quick strip` first, exactly as wg-quick does.

/** Comment lines cannot contain a newline; anything else in a comment is inert. */
const comment = (text: string) => `# ${text.replace(/[\r\n]+/g, " ")}`;

export function wireguardConf(p: WireguardProxy): string {
  const lines = [comment(p.name), "[Interface]", `PrivateKey = ${p.privateKey}`];
  if (p.addresses.length > 0) lines.push(`Address = ${p.addresses.join(", ")}`);
  if (p.dns.length > 0) lines.push(`DNS = ${p.dns.join(", ")}`);
  if (p.mtu !== null) lines.push(`MTU = ${p.mtu}`);
  lines.push("", "[Peer]", `PublicKey = ${p.serverPublicKey}`);
  if (p.presharedKey) lines.push(`PresharedKey = ${p.presharedKey}`);
  lines.push(`AllowedIPs = ${p.allowedIps.join(", ")}`, `Endpoint = ${hostPort(p.address, p.port)}`);
  if (p.persistentKeepalive !== null) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  return `${lines.join("\n")}\n`;
}

export interface WireguardFile {
  nodeId: string;
  /** Safe as a wg-quick interface name (≤ 15 chars + ".conf"). */
  fileName: string;
  conf: string;
}

/** One .conf per node the subscriber may use WireGuard on. */
export function wireguardFiles(proxies: readonly ResolvedProxy[]): WireguardFile[] {
  const wg = proxies.filter((p): p is WireguardProxy => p.kind === "wireguard");
  return wg.map((p) => ({
    nodeId: p.nodeId,
    fileName: wireguardFileName(p.nodeName),
    conf: wireguardConf(p),
  }));
}

/**
 * The `wireguard` format is a single file: the requested node's, or the first one. With no
 * WireGuard node at all the subscriber still gets a loadable file whose comment says why.
 */
export function pickWireguardFile(proxies: readonly ResolvedProxy[], nodeId?: string): WireguardFile {
  const files = wireguardFiles(proxies);
  const file = nodeId === undefined ? files[0] : files.find((f) => f.nodeId === nodeId);
  if (file) return file;
  const placeholder = placeholderWireguardProxy(NO_SERVERS_REASON);
  return { nodeId: placeholder.nodeId, fileName: "unavailable.conf", conf: wireguardConf(placeholder) };
}
