import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  randomBytes,
  randomUUID,
} from "node:crypto";

// Per-engine secrets. node:crypto only: randomness and X25519 are computation, not I/O, and using
// the platform's CSPRNG and curve code beats any hand-rolled variant. The random source is a
// parameter so tests can pin outputs; production callers never pass one.

export type RandomSource = (size: number) => Uint8Array;
const systemRandom: RandomSource = (size) => randomBytes(size);

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

/** A VLESS/VMess user id. Xray also accepts arbitrary strings, but only a real UUID works everywhere. */
export function newXrayUuid(): string {
  return randomUUID();
}

export const PASSWORD_MIN_LENGTH = 16;
export const PASSWORD_MAX_LENGTH = 128;
export const PASSWORD_DEFAULT_LENGTH = 24;

/**
 * A Trojan or classic Shadowsocks password from the URL-safe base64 alphabet (6 bits per char, so
 * the default 24 chars carry 144 bits). URL-safe because passwords land in share links, Clash YAML
 * and sing-box JSON unescaped; bounded because some clients truncate or reject long ones.
 */
export function newPassword(length = PASSWORD_DEFAULT_LENGTH, random: RandomSource = systemRandom): string {
  if (!Number.isInteger(length) || length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new RangeError(`password length must be from ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH}`);
  }
  // ceil(6·length / 8) bytes: every kept character comes from 6 whole random bits, so each of the
  // 64 characters is equally likely (no modulo bias, no padding).
  return b64url(random(Math.ceil((length * 6) / 8))).slice(0, length);
}

/** Key sizes are fixed by SIP022: the key is the cipher key itself, not a passphrase. */
export const SHADOWSOCKS_2022_KEY_BYTES = {
  "2022-blake3-aes-128-gcm": 16,
  "2022-blake3-aes-256-gcm": 32,
  "2022-blake3-chacha20-poly1305": 32,
} as const;
export type Shadowsocks2022Method = keyof typeof SHADOWSOCKS_2022_KEY_BYTES;

/** A user PSK for a Shadowsocks 2022 method: standard base64 (with padding), as Xray expects. */
export function newShadowsocks2022Key(
  method: Shadowsocks2022Method,
  random: RandomSource = systemRandom,
): string {
  const size = SHADOWSOCKS_2022_KEY_BYTES[method];
  if (size === undefined) throw new RangeError(`unknown Shadowsocks 2022 method "${method}"`);
  return b64(random(size));
}

/** Whether `key` decodes to exactly the byte length `method` needs. */
export function isShadowsocks2022Key(method: Shadowsocks2022Method, key: string): boolean {
  const size = SHADOWSOCKS_2022_KEY_BYTES[method];
  return size !== undefined && isBase64OfLength(key, size);
}

function isBase64OfLength(text: string, bytes: number): boolean {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return false;
  const decoded = Buffer.from(text, "base64");
  // Round-tripping rejects non-canonical encodings (stray bits in the last char, wrong padding).
  return decoded.length === bytes && decoded.toString("base64") === text;
}

// X25519 keys as DER: PKCS#8 and SPKI wrap the raw 32-byte key behind a fixed header, so the raw
// key is the last 32 bytes, and a raw private key becomes importable by prefixing the header.
const PKCS8_X25519_HEADER = Buffer.from("302e020100300506032b656e04220420", "hex");
const WG_KEY_BYTES = 32;

export interface WireGuardKeyPair {
  /** Base64 of the raw 32-byte private key, as `wg genkey` prints it. */
  privateKey: string;
  /** Base64 of the raw 32-byte public key, as `wg pubkey` prints it. */
  publicKey: string;
}

/**
 * `wg genkey` + `wg pubkey`. The key generation job encodes both halves itself (JWK: the raw keys,
 * base64url), re-encoded here as standard base64. Two reasons not to export KeyObjects afterwards:
 * - it is ~4x cheaper (300,000 pairs in ~9 s here; DER export of KeyObjects ~7k pairs/s);
 * - on Node 20, exporting a KeyObject while V8 collects the key-generation job that made it can
 *   deadlock the main thread (seen here: `~KeyGenJob()` blocked on the key's mutex inside a GC during
 *   a bulk create of thousands of users). With encodings no KeyObject is ever handed to JavaScript.
 */
export function newWireGuardKeyPair(): WireGuardKeyPair {
  // @types/node lacks the JWK-encoding overload for X25519; Node has supported it since 15.9.
  const { privateKey, publicKey } = (
    generateKeyPairSync as unknown as (
      type: "x25519",
      options: { publicKeyEncoding: { format: "jwk" }; privateKeyEncoding: { format: "jwk" } },
    ) => { privateKey: JsonWebKey; publicKey: JsonWebKey }
  )("x25519", { publicKeyEncoding: { format: "jwk" }, privateKeyEncoding: { format: "jwk" } });
  if (!privateKey.d || !publicKey.x) throw new Error("X25519 key generation returned no key material");
  return {
    privateKey: Buffer.from(privateKey.d, "base64url").toString("base64"),
    publicKey: Buffer.from(publicKey.x, "base64url").toString("base64"),
  };
}

/** `wg pubkey`: the public key of a base64 private key. Throws `RangeError` for a malformed key. */
export function wireGuardPublicKey(privateKey: string): string {
  if (!isWireGuardKey(privateKey)) throw new RangeError("not a WireGuard key (base64 of 32 bytes)");
  const der = Buffer.concat([PKCS8_X25519_HEADER, Buffer.from(privateKey, "base64")]);
  const pub = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
  return b64(pub.export({ format: "der", type: "spki" }).subarray(-WG_KEY_BYTES));
}

/** Any WireGuard key (private, public, preshared): canonical base64 of 32 bytes, 44 characters. */
export function isWireGuardKey(text: string): boolean {
  return text.length === 44 && isBase64OfLength(text, WG_KEY_BYTES);
}

/** `wg genpsk`: 32 random bytes, base64. */
export function newPresharedKey(random: RandomSource = systemRandom): string {
  return b64(random(WG_KEY_BYTES));
}

export const SUBSCRIPTION_TOKEN_BYTES = 24;

/**
 * The secret in `/sub/{token}`: 192 random bits (well above the 128-bit floor, so guessing is out of
 * reach even at 1M live tokens), base64url without padding: 32 characters, safe in a URL path.
 */
export function newSubscriptionToken(random: RandomSource = systemRandom): string {
  return b64url(random(SUBSCRIPTION_TOKEN_BYTES));
}

/** Cheap shape check before any database lookup, so junk paths never reach the database. */
export function isSubscriptionToken(text: string): boolean {
  return /^[A-Za-z0-9_-]{32}$/.test(text);
}
