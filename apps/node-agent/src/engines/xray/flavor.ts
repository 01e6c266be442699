// The two cores the Xray driver speaks to. They share the gRPC API shape but differ in package prefix
// (TypedMessage type strings must carry the core's own prefix, or the core answers
// "Serial: Unknown type"), in which RPCs exist, in Shadowsocks cipher enum numbers, in whether
// Shadowsocks inbounds are multi-user, and in the VMess alter_id field. See research/protocols.md §1.

export type XrayFlavorName = "xray" | "v2ray4";

export type ShadowsocksMethod =
  | "aes-128-gcm"
  | "aes-256-gcm"
  | "chacha20-poly1305"
  | "xchacha20-poly1305"
  | "none";

export interface CoreFlavor {
  name: XrayFlavorName;
  /** Package prefix of every message and service, with the trailing dot. */
  prefix: string;
  /** CipherType enum numbers; absent ⇒ the core does not support the method. */
  shadowsocksCiphers: Partial<Record<ShadowsocksMethod, number>>;
  /** Shadowsocks server implements UserManager (AlterInbound works). False ⇒ one inbound per user. */
  multiUserShadowsocks: boolean;
  /** VMess Account still has `uint32 alter_id = 2`. */
  vmessAlterId: boolean;
  /** HandlerService.GetInboundUsers exists (Xray ≥ v24.11.5); v2ray 4.34 answers UNIMPLEMENTED. */
  hasGetInboundUsers: boolean;
  /** AddInbound with a taken tag errors (Xray) instead of leaking the old listener (v2ray 4.34). */
  addInboundRejectsDuplicateTag: boolean;
  defaultBinary: string;
  commandArgs(configPath: string): string[];
}

export const XRAY: CoreFlavor = {
  name: "xray",
  prefix: "xray.",
  shadowsocksCiphers: {
    "aes-128-gcm": 5,
    "aes-256-gcm": 6,
    "chacha20-poly1305": 7,
    "xchacha20-poly1305": 8,
  },
  multiUserShadowsocks: true,
  vmessAlterId: false,
  hasGetInboundUsers: true,
  addInboundRejectsDuplicateTag: true,
  defaultBinary: "xray",
  commandArgs: (configPath) => ["run", "-config", configPath],
};

export const V2RAY4: CoreFlavor = {
  name: "v2ray4",
  prefix: "v2ray.core.",
  shadowsocksCiphers: {
    "aes-128-gcm": 1,
    "aes-256-gcm": 2,
    "chacha20-poly1305": 3,
    none: 4,
  },
  multiUserShadowsocks: false,
  vmessAlterId: true,
  hasGetInboundUsers: false,
  addInboundRejectsDuplicateTag: false,
  defaultBinary: "v2ray",
  commandArgs: (configPath) => ["-config", configPath],
};

export function flavorByName(name: XrayFlavorName): CoreFlavor {
  return name === "xray" ? XRAY : V2RAY4;
}

/** Full message name as the core registers it, e.g. `v2ray.core.proxy.vless.Account`. */
export function typeName(flavor: CoreFlavor, suffix: string): string {
  return flavor.prefix + suffix;
}

export function methodPath(flavor: CoreFlavor, service: "handler" | "stats", method: string): string {
  const svc =
    service === "handler" ? "app.proxyman.command.HandlerService" : "app.stats.command.StatsService";
  return `/${flavor.prefix}${svc}/${method}`;
}

const METHOD_ALIASES: Record<string, ShadowsocksMethod> = {
  "aes-128-gcm": "aes-128-gcm",
  aead_aes_128_gcm: "aes-128-gcm",
  "aes-256-gcm": "aes-256-gcm",
  aead_aes_256_gcm: "aes-256-gcm",
  "chacha20-poly1305": "chacha20-poly1305",
  "chacha20-ietf-poly1305": "chacha20-poly1305",
  aead_chacha20_poly1305: "chacha20-poly1305",
  "xchacha20-poly1305": "xchacha20-poly1305",
  "xchacha20-ietf-poly1305": "xchacha20-poly1305",
  none: "none",
  plain: "none",
};

/** Cipher enum number for a JSON method name on this core; throws for a method the core lacks. */
export function shadowsocksCipher(flavor: CoreFlavor, method: string): number {
  const canonical = METHOD_ALIASES[method.toLowerCase()];
  const value = canonical === undefined ? undefined : flavor.shadowsocksCiphers[canonical];
  if (value === undefined) {
    throw new Error(`shadowsocks method "${method}" is not supported by ${flavor.name}`);
  }
  return value;
}
