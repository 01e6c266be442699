import { generateKeyPairSync, type JsonWebKey } from "node:crypto";
import type { SecretBox } from "@vpnpanel/common";
import {
  newPassword,
  newPresharedKey,
  newShadowsocks2022Key,
  newXrayUuid,
  type WireGuardKeyPair,
} from "@vpnpanel/domain";
// The node (desired state) and subscription-feed readers decrypt with this context; one definition.
import { credentialContext } from "../desired-state/desired-users";

// Per-user engine credentials. Secrets are sealed with the SECRET_KEY box, each bound to a context
// naming the column and the user (`credentials.<column>:<user id>`), so a ciphertext copied onto
// another user or column fails to open.
//
// The Shadowsocks secret is a 32-byte base64 key: valid as a classic password and as the user PSK of
// the 256-bit SIP022 methods (2022-blake3-aes-256-gcm, -chacha20-poly1305), whichever an inbound uses.

export const CREDENTIAL_KINDS = ["xray", "trojan", "shadowsocks", "wireguard"] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export interface PlainCredentials {
  xrayUuid: string;
  trojanPassword: string;
  shadowsocksPassword: string;
  wgPrivateKey: string;
  wgPublicKey: string;
  wgPresharedKey: string;
}

export interface SealedCredentials {
  xrayUuid: string;
  trojanPasswordEnc: string;
  shadowsocksPasswordEnc: string;
  wgPrivateKeyEnc: string;
  wgPublicKey: string;
  wgPresharedKeyEnc: string;
}

/**
 * `wg genkey` + `wg pubkey`. The key generation job encodes both halves itself (JWK: the raw keys,
 * base64url), re-encoded here as standard base64. Two reasons not to export KeyObjects afterwards:
 * - it is ~4x cheaper (measured here: 300,000 pairs in ~9 s; DER export of KeyObjects ~7k pairs/s);
 * - on Node 20, exporting a KeyObject while V8 collects the key-generation job that made it can
 *   deadlock the main thread (seen here: `~KeyGenJob()` blocked on the key's mutex inside a GC during
 *   a bulk create of thousands of users). With encodings no KeyObject is ever handed to JavaScript.
 */
export function newWireGuardKeyPairFast(): WireGuardKeyPair {
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

const CHUNK = 250;

/** Generates `count` credential sets, yielding to the event loop between chunks of work. */
export async function generateCredentials(count: number): Promise<PlainCredentials[]> {
  const out: PlainCredentials[] = [];
  while (out.length < count) {
    if (out.length > 0) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < CHUNK && out.length < count; i++) {
      const wg = newWireGuardKeyPairFast();
      out.push({
        xrayUuid: newXrayUuid(),
        trojanPassword: newPassword(),
        shadowsocksPassword: newShadowsocks2022Key("2022-blake3-aes-256-gcm"),
        wgPrivateKey: wg.privateKey,
        wgPublicKey: wg.publicKey,
        wgPresharedKey: newPresharedKey(),
      });
    }
  }
  return out;
}

export function sealCredentials(box: SecretBox, userId: string, c: PlainCredentials): SealedCredentials {
  return {
    xrayUuid: c.xrayUuid,
    trojanPasswordEnc: box.encrypt(c.trojanPassword, credentialContext("trojan_password", userId)),
    shadowsocksPasswordEnc: box.encrypt(
      c.shadowsocksPassword,
      credentialContext("shadowsocks_password", userId),
    ),
    wgPrivateKeyEnc: box.encrypt(c.wgPrivateKey, credentialContext("wg_private_key", userId)),
    wgPublicKey: c.wgPublicKey,
    wgPresharedKeyEnc: box.encrypt(c.wgPresharedKey, credentialContext("wg_preshared_key", userId)),
  };
}

/** Opens a stored set (the subscription endpoint renders configs from this). */
export function openCredentials(box: SecretBox, userId: string, s: SealedCredentials): PlainCredentials {
  return {
    xrayUuid: s.xrayUuid,
    trojanPassword: box.decrypt(s.trojanPasswordEnc, credentialContext("trojan_password", userId)),
    shadowsocksPassword: box.decrypt(
      s.shadowsocksPasswordEnc,
      credentialContext("shadowsocks_password", userId),
    ),
    wgPrivateKey: box.decrypt(s.wgPrivateKeyEnc, credentialContext("wg_private_key", userId)),
    wgPublicKey: s.wgPublicKey,
    wgPresharedKey: box.decrypt(s.wgPresharedKeyEnc, credentialContext("wg_preshared_key", userId)),
  };
}
