// Input model of the renderer. Self-contained on purpose: the API maps its DB rows into these shapes,
// so the renderer never depends on the schema and stays a set of pure functions.

/** Which proxy core runs on a node. "v2ray" means the v2fly 4.x line (Debian ships 4.34). */
export type Core = "xray" | "v2ray";

/** Engines a subscriber may use; a subscriber without an engine gets no proxies of that kind. */
export type Engine = "xray" | "wireguard";

/** Lifecycle status as decided by the domain state machine. */
export type SubscriberStatus = "active" | "on_hold" | "limited" | "expired" | "disabled";

export interface Usage {
  /** Bytes sent by the client (client → server), lifetime of the current period. */
  upload: number;
  /** Bytes received by the client (server → client). */
  download: number;
  /** Quota in bytes for upload + download; null = unlimited. */
  total: number | null;
  /** Moment the subscription stops working; null = never. */
  expireAt: Date | null;
}

export interface WireguardCredentials {
  /** Client private key, standard base64 (44 chars). */
  privateKey: string;
  /** Per-peer preshared key, standard base64; null when the node runs without PSKs. */
  presharedKey: string | null;
  /** Tunnel addresses with prefix, IPv4 first and optionally IPv6, e.g. ["10.8.0.2/32", "fd42::2/128"]. */
  addresses: readonly string[];
}

export interface Credentials {
  /** VLESS and VMess user id (UUID). */
  xrayUuid: string;
  /** Trojan password; should be URL-safe, clients disagree on percent-decoding it. */
  trojanPassword: string;
  /**
   * Shadowsocks password. For the 2022-blake3 methods this must be the user's base64 key of the
   * method's key length; the inbound's server key is prepended at render time.
   */
  shadowsocksPassword: string;
  wireguard: WireguardCredentials | null;
}

export interface Subscriber {
  /** Shown in remarks ({USERNAME}), on the HTML page and in file names. Untrusted text. */
  displayName: string;
  status: SubscriberStatus;
  usage: Usage;
  credentials: Credentials;
  /** Subset of engines this subscriber may use. */
  engines: readonly Engine[];
}

export type Protocol = "vless" | "vmess" | "trojan" | "shadowsocks";
export type TransportType = "tcp" | "ws" | "grpc" | "httpupgrade" | "xhttp";
export type SecurityType = "none" | "tls" | "reality";
export type XhttpMode = "auto" | "packet-up" | "stream-up" | "stream-one";

export interface TransportSettings {
  type: TransportType;
  /** ws / httpupgrade / xhttp path, or the request path of a tcp "http" header. Starts with "/". */
  path?: string;
  /** Host header (ws / httpupgrade / xhttp / tcp "http" header). */
  host?: string;
  /** gRPC service name; gRPC only. */
  serviceName?: string;
  /** tcp only: "http" disguises the stream as an HTTP/1.1 request. */
  headerType?: "none" | "http";
  /** xhttp only; default "auto". */
  mode?: XhttpMode;
}

export interface RealitySettings {
  /** Server's X25519 public key, base64url without padding (43 chars). */
  publicKey: string;
  /** Hex, 0–16 chars, even length. */
  shortId: string;
  /** Initial path the client requests while probing; starts with "/". */
  spiderX?: string;
  /** SNI of the site REALITY borrows its handshake from. */
  serverName: string;
}

export interface SecuritySettings {
  type: SecurityType;
  /** TLS server name; defaults to the host's address. */
  sni?: string;
  alpn?: readonly string[];
  /** uTLS fingerprint preset (chrome, firefox, …). Xray only. REALITY defaults to "chrome". */
  fingerprint?: string;
  allowInsecure?: boolean;
  reality?: RealitySettings;
}

export type ShadowsocksMethod =
  | "aes-128-gcm"
  | "aes-256-gcm"
  | "chacha20-ietf-poly1305"
  | "xchacha20-ietf-poly1305"
  | "2022-blake3-aes-128-gcm"
  | "2022-blake3-aes-256-gcm"
  | "2022-blake3-chacha20-poly1305";

export interface ShadowsocksSettings {
  method: ShadowsocksMethod;
  /** 2022-blake3 methods only: the inbound's base64 PSK; clients send "serverKey:userKey". */
  serverKey?: string;
}

/** One public address a client should dial for an inbound; several allow CDN fronts and IP fallbacks. */
export interface HostOverride {
  /** Domain or IP literal (IPv6 without brackets). */
  address: string;
  /** Defaults to the inbound port (a CDN may listen on 443 in front of 8080). */
  port?: number;
  sni?: string;
  /** Host header for ws / httpupgrade / xhttp / tcp-http. */
  host?: string;
  path?: string;
  /** Remark template, see remark-template.ts for variables. */
  remark?: string;
}

export interface InboundDefinition {
  tag: string;
  protocol: Protocol;
  port: number;
  transport: TransportSettings;
  security: SecuritySettings;
  /** VLESS only: "xtls-rprx-vision" (Xray, tcp + tls/reality). */
  flow?: "" | "xtls-rprx-vision";
  shadowsocks?: ShadowsocksSettings;
  /** Empty or absent: one entry at the node's address with the inbound's own settings. */
  hosts?: readonly HostOverride[];
}

export interface WireguardEndpoint {
  host: string;
  port: number;
  /** Server public key, standard base64. */
  publicKey: string;
  /** Default ["0.0.0.0/0", "::/0"]: full tunnel. */
  allowedIps?: readonly string[];
  dns?: readonly string[];
  mtu?: number | null;
  persistentKeepalive?: number | null;
}

export interface RenderNode {
  /** Stable id (node_…), used for per-node WireGuard downloads. */
  id: string;
  name: string;
  core: Core;
  /** Default public address of the node when an inbound has no host overrides. */
  address: string;
  inbounds: readonly InboundDefinition[];
  /** null when the node does not run WireGuard. */
  wireguard: WireguardEndpoint | null;
}

/** A validation problem; `field` is a dotted path into the validated object, e.g. "security.fingerprint". */
export interface FieldError {
  field: string;
  message: string;
}
