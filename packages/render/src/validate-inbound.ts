import { validateRemarkTemplate } from "./remark-template";
import type {
  Core,
  FieldError,
  InboundDefinition,
  ShadowsocksMethod,
  TransportType,
  WireguardEndpoint,
} from "./types";

const PROTOCOLS = ["vless", "vmess", "trojan", "shadowsocks"];
const TRANSPORTS: Record<Core, readonly TransportType[]> = {
  xray: ["tcp", "ws", "grpc", "httpupgrade", "xhttp"],
  // v2fly 4.34 transports are tcp, kcp, ws, http(h2), quic, domainsocket; we offer tcp and ws of those.
  v2ray: ["tcp", "ws"],
};
const XHTTP_MODES = ["auto", "packet-up", "stream-up", "stream-one"];

/** uTLS presets Xray accepts (transport/internet/tls PresetFingerprints) that clients also know. */
export const FINGERPRINTS = [
  "chrome",
  "firefox",
  "safari",
  "ios",
  "android",
  "edge",
  "360",
  "qq",
  "random",
  "randomized",
] as const;
const ALPN_VALUES = ["h3", "h2", "http/1.1"];

/** Cipher names per core: v2ray 4.34 knows only the three AEAD ciphers (and "none", never offered). */
export const SHADOWSOCKS_METHODS: Record<Core, readonly ShadowsocksMethod[]> = {
  xray: [
    "aes-128-gcm",
    "aes-256-gcm",
    "chacha20-ietf-poly1305",
    "xchacha20-ietf-poly1305",
    "2022-blake3-aes-128-gcm",
    "2022-blake3-aes-256-gcm",
    "2022-blake3-chacha20-poly1305",
  ],
  v2ray: ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"],
};

/** Key length in bytes a 2022-blake3 method needs (SIP022); undefined for classic AEAD methods. */
export function ss2022KeyLength(method: string): number | undefined {
  if (method === "2022-blake3-aes-128-gcm") return 16;
  if (method === "2022-blake3-aes-256-gcm" || method === "2022-blake3-chacha20-poly1305") return 32;
  return undefined;
}

function isBase64Key(value: string, bytes: number): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(value) && Buffer.from(value, "base64").length === bytes;
}

export function isValidPort(port: unknown): boolean {
  return typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535;
}

const coreName = (core: Core) => (core === "v2ray" ? "v2ray 4.x" : "Xray");

function checkTransport(core: Core, inbound: InboundDefinition, errors: FieldError[]): void {
  const t = inbound.transport;
  if (!TRANSPORTS.xray.includes(t.type)) {
    errors.push({ field: "transport.type", message: `unknown transport "${t.type}"` });
    return;
  }
  if (!TRANSPORTS[core].includes(t.type)) {
    errors.push({ field: "transport.type", message: `${coreName(core)} has no ${t.type} transport` });
  }
  if (t.type === "grpc") {
    if (!t.serviceName) errors.push({ field: "transport.serviceName", message: "grpc needs a serviceName" });
    else if (/[/\s]/.test(t.serviceName)) {
      errors.push({ field: "transport.serviceName", message: "serviceName must not contain '/' or spaces" });
    }
  } else if (t.serviceName) {
    errors.push({
      field: "transport.serviceName",
      message: "serviceName applies to the grpc transport only",
    });
  }
  if (t.type === "ws" || t.type === "httpupgrade" || t.type === "xhttp") {
    if (!t.path) errors.push({ field: "transport.path", message: `${t.type} needs a path` });
  }
  if (t.path !== undefined && t.path !== "" && !t.path.startsWith("/")) {
    errors.push({ field: "transport.path", message: "path must start with '/'" });
  }
  if (t.headerType !== undefined && t.headerType !== "none") {
    if (t.type !== "tcp")
      errors.push({ field: "transport.headerType", message: "headerType applies to tcp only" });
    else if (t.headerType !== "http") {
      errors.push({ field: "transport.headerType", message: `unknown headerType "${t.headerType}"` });
    }
  }
  if (t.mode !== undefined) {
    if (t.type !== "xhttp") errors.push({ field: "transport.mode", message: "mode applies to xhttp only" });
    else if (!XHTTP_MODES.includes(t.mode)) {
      errors.push({ field: "transport.mode", message: `mode must be one of ${XHTTP_MODES.join(", ")}` });
    }
  }
}

function checkSecurity(core: Core, inbound: InboundDefinition, errors: FieldError[]): void {
  const s = inbound.security;
  if (!["none", "tls", "reality"].includes(s.type)) {
    errors.push({ field: "security.type", message: `unknown security "${s.type}"` });
    return;
  }
  if (s.fingerprint !== undefined && s.fingerprint !== "") {
    if (core === "v2ray") {
      errors.push({ field: "security.fingerprint", message: "v2ray 4.x has no uTLS fingerprint" });
    } else if (!(FINGERPRINTS as readonly string[]).includes(s.fingerprint)) {
      errors.push({
        field: "security.fingerprint",
        message: `fingerprint must be one of ${FINGERPRINTS.join(", ")}`,
      });
    }
  }
  for (const [i, value] of (s.alpn ?? []).entries()) {
    if (!ALPN_VALUES.includes(value)) {
      errors.push({ field: `security.alpn[${i}]`, message: `alpn must be one of ${ALPN_VALUES.join(", ")}` });
    }
  }
  if (s.type !== "reality") {
    if (s.reality)
      errors.push({ field: "security.reality", message: "reality settings need security reality" });
    if (s.type === "none" && (s.sni || (s.alpn?.length ?? 0) > 0 || s.allowInsecure)) {
      errors.push({ field: "security.type", message: "sni/alpn/allowInsecure need security tls" });
    }
    return;
  }
  if (core === "v2ray") {
    errors.push({ field: "security.type", message: "v2ray 4.x has no REALITY" });
    return;
  }
  if (inbound.protocol !== "vless") {
    errors.push({ field: "security.type", message: "REALITY is offered for vless only" });
  }
  if (!["tcp", "grpc", "xhttp"].includes(inbound.transport.type)) {
    errors.push({ field: "transport.type", message: "REALITY works over tcp, grpc or xhttp only" });
  }
  // An HTTP disguise inside a handshake that already imitates a real site only adds a fingerprint.
  if (inbound.transport.headerType === "http") {
    errors.push({ field: "transport.headerType", message: "REALITY is used without a tcp http header" });
  }
  const r = s.reality;
  if (!r) {
    errors.push({ field: "security.reality", message: "REALITY needs publicKey, shortId and serverName" });
    return;
  }
  if (!/^[A-Za-z0-9_-]{43}$/.test(r.publicKey)) {
    errors.push({ field: "security.reality.publicKey", message: "publicKey must be 43 chars of base64url" });
  }
  if (!/^([0-9a-f]{2}){0,8}$/.test(r.shortId)) {
    errors.push({
      field: "security.reality.shortId",
      message: "shortId must be 0–16 lowercase hex chars, even length",
    });
  }
  if (!r.serverName) errors.push({ field: "security.reality.serverName", message: "serverName is required" });
  if (r.spiderX && !r.spiderX.startsWith("/")) {
    errors.push({ field: "security.reality.spiderX", message: "spiderX must start with '/'" });
  }
}

function checkProtocol(core: Core, inbound: InboundDefinition, errors: FieldError[]): void {
  const { protocol, flow, security, transport } = inbound;
  if (flow) {
    if (core === "v2ray") errors.push({ field: "flow", message: "v2ray 4.x has no XTLS flow" });
    else if (flow !== "xtls-rprx-vision") errors.push({ field: "flow", message: `unknown flow "${flow}"` });
    else if (protocol !== "vless") errors.push({ field: "flow", message: "flow applies to vless only" });
    else if (security.type === "none" || transport.type !== "tcp" || transport.headerType === "http") {
      errors.push({ field: "flow", message: "xtls-rprx-vision needs tcp without header and tls or reality" });
    }
  }
  if (protocol === "trojan" && security.type !== "tls") {
    errors.push({ field: "security.type", message: "trojan needs security tls" });
  }
  if (protocol !== "shadowsocks") {
    if (inbound.shadowsocks) errors.push({ field: "shadowsocks", message: "applies to shadowsocks only" });
    return;
  }
  if (transport.type !== "tcp" || (transport.headerType ?? "none") !== "none") {
    errors.push({ field: "transport.type", message: "shadowsocks is offered over plain tcp only" });
  }
  if (security.type !== "none")
    errors.push({ field: "security.type", message: "shadowsocks has its own encryption" });
  const ss = inbound.shadowsocks;
  if (!ss) {
    errors.push({ field: "shadowsocks.method", message: "shadowsocks needs a method" });
    return;
  }
  if (!SHADOWSOCKS_METHODS[core].includes(ss.method)) {
    const allowed = SHADOWSOCKS_METHODS[core].join(", ");
    errors.push({ field: "shadowsocks.method", message: `${coreName(core)} supports ${allowed}` });
    return;
  }
  const keyLength = ss2022KeyLength(ss.method);
  if (keyLength === undefined) {
    if (ss.serverKey)
      errors.push({ field: "shadowsocks.serverKey", message: "serverKey applies to 2022 methods" });
  } else if (!ss.serverKey || !isBase64Key(ss.serverKey, keyLength)) {
    errors.push({
      field: "shadowsocks.serverKey",
      message: `${ss.method} needs a base64 ${keyLength}-byte key`,
    });
  }
}

/**
 * Everything wrong with an inbound for the given core. An empty list means every renderer can
 * produce a config the core accepts; inbounds with errors are skipped at render time.
 */
export function validateInbound(core: Core, inbound: InboundDefinition): FieldError[] {
  const errors: FieldError[] = [];
  if (!inbound.tag || inbound.tag.trim() !== inbound.tag) {
    errors.push({ field: "tag", message: "tag must be non-empty without surrounding spaces" });
  }
  if (!PROTOCOLS.includes(inbound.protocol)) {
    errors.push({ field: "protocol", message: `protocol must be one of ${PROTOCOLS.join(", ")}` });
    return errors;
  }
  if (!isValidPort(inbound.port)) errors.push({ field: "port", message: "port must be an integer 1..65535" });
  checkTransport(core, inbound, errors);
  checkSecurity(core, inbound, errors);
  checkProtocol(core, inbound, errors);
  for (const [i, host] of (inbound.hosts ?? []).entries()) {
    const at = `hosts[${i}]`;
    if (!host.address || /[\s/[\]@?#]/.test(host.address)) {
      errors.push({ field: `${at}.address`, message: "address must be a host name or IP without brackets" });
    }
    if (host.port !== undefined && !isValidPort(host.port)) {
      errors.push({ field: `${at}.port`, message: "port must be an integer 1..65535" });
    }
    if (host.path && !host.path.startsWith("/")) {
      errors.push({ field: `${at}.path`, message: "path must start with '/'" });
    }
    if (host.remark !== undefined) errors.push(...validateRemarkTemplate(host.remark, `${at}.remark`));
  }
  return errors;
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A 32-byte key in standard base64, the only form wg(8) and the WireGuard apps accept. */
export function isWireguardKey(value: string): boolean {
  return WG_KEY.test(value);
}

const CIDR = /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*\/\d{1,3})$/;

/** Problems with a node's WireGuard endpoint; a node with errors gets no WireGuard configs. */
export function validateWireguardEndpoint(endpoint: WireguardEndpoint): FieldError[] {
  const errors: FieldError[] = [];
  if (!endpoint.host || /[\s/[\]@?#]/.test(endpoint.host)) {
    errors.push({ field: "wireguard.host", message: "host must be a host name or IP without brackets" });
  }
  if (!isValidPort(endpoint.port))
    errors.push({ field: "wireguard.port", message: "port must be an integer 1..65535" });
  if (!isWireguardKey(endpoint.publicKey)) {
    errors.push({ field: "wireguard.publicKey", message: "publicKey must be a base64 32-byte key" });
  }
  for (const [i, cidr] of (endpoint.allowedIps ?? []).entries()) {
    if (!CIDR.test(cidr))
      errors.push({ field: `wireguard.allowedIps[${i}]`, message: `"${cidr}" is not a CIDR` });
  }
  const mtu = endpoint.mtu;
  if (mtu !== undefined && mtu !== null && !(Number.isInteger(mtu) && mtu >= 1280 && mtu <= 9000)) {
    errors.push({ field: "wireguard.mtu", message: "mtu must be an integer 1280..9000" });
  }
  const keepalive = endpoint.persistentKeepalive;
  if (keepalive !== undefined && keepalive !== null && !(Number.isInteger(keepalive) && keepalive >= 0)) {
    errors.push({
      field: "wireguard.persistentKeepalive",
      message: "persistentKeepalive must be seconds >= 0",
    });
  }
  return errors;
}
