import type { SecretBox } from "@vpnpanel/common";
import {
  newPassword,
  newPresharedKey,
  newShadowsocks2022Key,
  newWireGuardKeyPair,
  newXrayUuid,
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

const CHUNK = 250;

/** Generates `count` credential sets, yielding to the event loop between chunks of work. */
export async function generateCredentials(count: number): Promise<PlainCredentials[]> {
  const out: PlainCredentials[] = [];
  while (out.length < count) {
    if (out.length > 0) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < CHUNK && out.length < count; i++) {
      const wg = newWireGuardKeyPair();
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
