// WireGuard keys with node:crypto (X25519), so no key ever passes through a child process's argv or
// output. The node's private key is created locally on first start and stays in the state dir (0600).

import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";

// DER prefixes of an X25519 PKCS#8 private key and SPKI public key; the raw 32 bytes follow.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX_LENGTH = 12;

export function isWireguardKey(text: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text);
}

/** Clamps a raw X25519 scalar the way `wg genkey` does, so stored keys are canonical. */
function clamp(raw: Buffer): Buffer {
  const out = Buffer.from(raw);
  out[0] = (out[0] as number) & 248;
  out[31] = ((out[31] as number) & 127) | 64;
  return out;
}

export function publicKeyOf(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64, "base64");
  if (raw.length !== 32) throw new Error("private key must be 32 bytes");
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(SPKI_PREFIX_LENGTH).toString("base64");
}

export function generateKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync("x25519");
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  const priv = clamp(pkcs8.subarray(PKCS8_PREFIX.length)).toString("base64");
  return { privateKey: priv, publicKey: publicKeyOf(priv) };
}

/**
 * Loads the private key at `path`, creating it (mode 0600) if missing, and returns the public key.
 * The private key itself is never returned: callers pass the file path to `wg set … private-key`.
 */
export async function ensurePrivateKeyFile(path: string): Promise<{ publicKey: string }> {
  let text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (text === null) {
    text = generateKeyPair().privateKey;
    await writeFile(path, `${text}\n`, { mode: 0o600, flag: "wx" });
  }
  // Tighten a key file an operator created with a looser mode.
  await chmod(path, 0o600);
  const trimmed = text.trim();
  if (!isWireguardKey(trimmed)) throw new Error(`private key file ${path} is malformed`);
  return { publicKey: publicKeyOf(trimmed) };
}
