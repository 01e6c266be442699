import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

// Authenticated encryption for secrets at rest (private keys, passwords): AES-256-GCM with a random
// 96-bit IV. Format `v1:<base64(iv | tag | ciphertext)>` so the scheme can change without a guess.
// An optional `context` (e.g. "ca.key" or a row id) is bound as additional authenticated data, so a
// ciphertext copied to another column or row fails to decrypt instead of being silently accepted.

const VERSION = "v1";

export class SecretBoxError extends Error {}

export interface SecretBox {
  encrypt(plaintext: string, context?: string): string;
  decrypt(boxed: string, context?: string): string;
}

/** Parses a 32-byte key given as base64 or hex. */
export function parseSecretKey(raw: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, "hex") : Buffer.from(raw, "base64");
  if (key.length !== 32) throw new SecretBoxError("secret key must be 32 bytes (base64 or hex)");
  return key;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new SecretBoxError("secret key must be 32 bytes");
  return {
    encrypt(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      if (context) cipher.setAAD(Buffer.from(context, "utf8"));
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`;
    },
    decrypt(boxed, context) {
      const sep = boxed.indexOf(":");
      const version = boxed.slice(0, sep);
      const payload = boxed.slice(sep + 1);
      if (sep < 0 || version !== VERSION || !payload) throw new SecretBoxError("unknown secret format");
      const raw = Buffer.from(payload, "base64");
      if (raw.length < 28) throw new SecretBoxError("secret is truncated");
      const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      if (context) decipher.setAAD(Buffer.from(context, "utf8"));
      try {
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
      } catch {
        throw new SecretBoxError("secret failed authentication (wrong key, wrong context or tampered data)");
      }
    },
  };
}
