import { AppError, type SecretBox } from "@vpnpanel/common";
import type { Core, FieldError, InboundDefinition } from "@vpnpanel/render";
import { validateInbound } from "@vpnpanel/render";

// A node's inbounds as stored: the client-facing definition the renderers use (@vpnpanel/render
// InboundDefinition, hosts included) plus the server-side settings only the node needs. The REALITY
// private key is write-only: encrypted at rest, never returned by the API, decrypted only to render
// the node's config.

export interface InboundServerSettings {
  /** Address the core binds; default 0.0.0.0. */
  listen?: string;
  /** Paths on the node of the TLS certificate and key (security "tls"). */
  tls?: { certificateFile: string; keyFile: string };
  reality?: {
    /** Input only (X25519 private key, base64url); stored as privateKeyEnc. */
    privateKey?: string;
    privateKeyEnc?: string;
    /** The site REALITY forwards unauthenticated clients to, host:port. */
    dest: string;
    /** Accepted SNIs; default the definition's serverName. */
    serverNames?: string[];
  };
}

export interface NodeInbound extends InboundDefinition {
  server?: InboundServerSettings;
}

export interface WireguardSettings {
  /** Interface name (informational; the agent names its devices). */
  interface?: string;
  listenPort: number;
  /** The interface's own addresses, e.g. "10.80.0.1/12". */
  addresses: string[];
  mtu?: number;
  /** What clients dial; default the node address and listenPort. */
  endpointHost?: string;
  endpointPort?: number;
  dns?: string[];
  allowedIps?: string[];
  persistentKeepalive?: number;
}

const realityContext = (nodeId: string, tag: string) => `node.inbound.reality:${nodeId}:${tag}`;

function fail(errors: FieldError[]): never {
  const first = errors[0]!;
  throw new AppError("validation_failed", `${first.field}: ${first.message}`, {
    field: first.field,
    errors,
  });
}

/**
 * Validates inbounds for the node's core (a v2ray 4.x node refuses REALITY, XTLS flow, gRPC and uTLS
 * with the renderer's message) and the server-side settings, and encrypts REALITY keys. `previous`
 * supplies the stored key of an inbound whose update does not resend it.
 */
export function prepareInbounds(
  box: SecretBox,
  nodeId: string,
  core: Core,
  inbounds: readonly NodeInbound[],
  previous: readonly NodeInbound[] = [],
): NodeInbound[] {
  const errors: FieldError[] = [];
  const tags = new Set<string>();
  const ports = new Set<number>();
  const out: NodeInbound[] = [];
  for (const [i, inbound] of inbounds.entries()) {
    const at = (f: string) => `inbounds[${i}].${f}`;
    for (const e of validateInbound(core, inbound)) errors.push({ field: at(e.field), message: e.message });
    if (core === "v2ray" && inbound.protocol === "shadowsocks") {
      // v2ray 4.x Shadowsocks inbounds hold one user each, so every subscriber would need a port of
      // their own on the node, which the panel does not allocate: refused rather than served to nobody.
      errors.push({
        field: at("protocol"),
        message: "v2ray 4.x serves one Shadowsocks user per inbound; offer Shadowsocks from an Xray node",
      });
    }
    if (tags.has(inbound.tag))
      errors.push({ field: at("tag"), message: `tag "${inbound.tag}" is used twice` });
    if (ports.has(inbound.port))
      errors.push({ field: at("port"), message: `port ${inbound.port} is used twice` });
    tags.add(inbound.tag);
    ports.add(inbound.port);
    const server: InboundServerSettings = { ...(inbound.server ?? {}) };
    if (inbound.security.type === "tls" && !server.tls) {
      errors.push({ field: at("server.tls"), message: "tls needs certificateFile and keyFile on the node" });
    }
    if (inbound.security.type === "reality") {
      const r = server.reality;
      const kept = previous.find((p) => p.tag === inbound.tag)?.server?.reality?.privateKeyEnc;
      if (!r?.dest)
        errors.push({ field: at("server.reality.dest"), message: "REALITY needs dest (host:port)" });
      if (r?.privateKey !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(r.privateKey)) {
        errors.push({
          field: at("server.reality.privateKey"),
          message: "privateKey must be 43 chars of base64url",
        });
      } else if (r && r.privateKey === undefined && !kept) {
        errors.push({
          field: at("server.reality.privateKey"),
          message: "REALITY needs the server's privateKey",
        });
      }
      if (r) {
        const { privateKey, privateKeyEnc: _old, ...rest } = r;
        server.reality = {
          ...rest,
          privateKeyEnc: privateKey ? box.encrypt(privateKey, realityContext(nodeId, inbound.tag)) : kept,
        };
      }
    } else {
      delete server.reality;
    }
    out.push({ ...inbound, ...(Object.keys(server).length ? { server } : {}) });
  }
  if (errors.length) fail(errors);
  return out;
}

/** The inbounds as the API shows them: the REALITY key replaced by whether one is set. */
export function publicInbounds(inbounds: readonly NodeInbound[]): unknown[] {
  return inbounds.map((inbound) => {
    const reality = inbound.server?.reality;
    if (!reality) return inbound;
    const { privateKeyEnc, privateKey: _p, ...rest } = reality;
    return {
      ...inbound,
      server: { ...inbound.server, reality: { ...rest, privateKeySet: Boolean(privateKeyEnc) } },
    };
  });
}

export function validateWireguardSettings(w: WireguardSettings): void {
  const errors: FieldError[] = [];
  if (!Number.isInteger(w.listenPort) || w.listenPort < 1 || w.listenPort > 65535) {
    errors.push({ field: "wireguard.listenPort", message: "listenPort must be an integer 1..65535" });
  }
  if (w.addresses.length === 0)
    errors.push({ field: "wireguard.addresses", message: "at least one address" });
  for (const [i, a] of w.addresses.entries()) {
    if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(a))
      errors.push({ field: `wireguard.addresses[${i}]`, message: `"${a}" is not an address with prefix` });
  }
  if (w.mtu !== undefined && !(Number.isInteger(w.mtu) && w.mtu >= 1280 && w.mtu <= 9000)) {
    errors.push({ field: "wireguard.mtu", message: "mtu must be an integer 1280..9000" });
  }
  if (errors.length) fail(errors);
}

function streamSettings(box: SecretBox, nodeId: string, def: NodeInbound): Record<string, unknown> {
  const t = def.transport;
  const stream: Record<string, unknown> = { network: t.type, security: def.security.type };
  if (t.type === "ws")
    stream.wsSettings = { path: t.path ?? "/", ...(t.host ? { headers: { Host: t.host } } : {}) };
  if (t.type === "grpc") stream.grpcSettings = { serviceName: t.serviceName ?? "" };
  if (t.type === "httpupgrade")
    stream.httpupgradeSettings = { path: t.path ?? "/", ...(t.host ? { host: t.host } : {}) };
  if (t.type === "xhttp") {
    stream.xhttpSettings = {
      path: t.path ?? "/",
      ...(t.host ? { host: t.host } : {}),
      mode: t.mode ?? "auto",
    };
  }
  if (t.type === "tcp" && t.headerType === "http") {
    stream.tcpSettings = {
      header: {
        type: "http",
        request: { path: [t.path || "/"], ...(t.host ? { headers: { Host: [t.host] } } : {}) },
      },
    };
  }
  const s = def.security;
  const server = def.server ?? {};
  if (s.type === "tls" && server.tls) {
    stream.tlsSettings = {
      ...(s.sni ? { serverName: s.sni } : {}),
      ...(s.alpn?.length ? { alpn: [...s.alpn] } : {}),
      certificates: [{ certificateFile: server.tls.certificateFile, keyFile: server.tls.keyFile }],
    };
  }
  if (s.type === "reality" && s.reality && server.reality?.privateKeyEnc) {
    stream.realitySettings = {
      show: false,
      dest: server.reality.dest,
      serverNames: server.reality.serverNames?.length ? server.reality.serverNames : [s.reality.serverName],
      privateKey: box.decrypt(server.reality.privateKeyEnc, realityContext(nodeId, def.tag)),
      shortIds: [s.reality.shortId],
    };
  }
  return stream;
}

function settings(def: NodeInbound): Record<string, unknown> {
  switch (def.protocol) {
    case "vless":
      return { clients: [], decryption: "none", ...(def.flow ? { flow: def.flow } : {}) };
    case "vmess":
    case "trojan":
      return { clients: [] };
    case "shadowsocks":
      return {
        clients: [],
        method: def.shadowsocks?.method,
        network: "tcp,udp",
        ...(def.shadowsocks?.serverKey ? { password: def.shadowsocks.serverKey } : {}),
      };
  }
}

/** NodeConfig.xray_inbounds_json: ordinary Xray inbound objects without clients ("" = no Xray). */
export function renderXrayInbounds(box: SecretBox, nodeId: string, inbounds: readonly NodeInbound[]): string {
  if (inbounds.length === 0) return "";
  return JSON.stringify(
    inbounds.map((def) => ({
      tag: def.tag,
      listen: def.server?.listen ?? "0.0.0.0",
      port: def.port,
      protocol: def.protocol,
      settings: settings(def),
      streamSettings: streamSettings(box, nodeId, def),
      sniffing: { enabled: true, destOverride: ["http", "tls"] },
    })),
  );
}
