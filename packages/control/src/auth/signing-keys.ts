import { randomBytes } from "node:crypto";
import type { Clock, SecretBox } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { and, desc, gt, isNull, lt, ne, or } from "drizzle-orm";
import {
  type CryptoKey,
  exportJWK,
  exportPKCS8,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type JWK,
} from "jose";

// JWT signing keys live in the database (private half encrypted at rest) so every API replica signs
// and verifies with the same set. The newest unretired key signs; retired keys keep verifying until
// the last token they signed has expired.

export const JWT_ALG = "ES256";

export interface VerifyKey {
  kid: string;
  key: CryptoKey;
  jwk: JWK;
}

export interface KeyStore {
  signingKey(): Promise<{ kid: string; key: CryptoKey }>;
  /** The key for `kid`, reloading once from the database when it is not known yet (rotation elsewhere). */
  verifyKey(kid: string): Promise<CryptoKey | null>;
  jwks(): Promise<{ keys: JWK[] }>;
  refresh(): Promise<void>;
}

export async function createSigningKey(db: Db, box: SecretBox): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair(JWT_ALG, { extractable: true });
  const kid = `k_${randomBytes(9).toString("base64url")}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: JWT_ALG, use: "sig" };
  await db.insert(schema.signingKeys).values({
    kid,
    alg: JWT_ALG,
    publicJwk: jwk as Record<string, unknown>,
    privateKeyEnc: box.encrypt(await exportPKCS8(privateKey)),
  });
  return kid;
}

/** Creates a new signing key and retires the others; keys past their verification window are deleted. */
export async function rotateSigningKeys(
  db: Db,
  box: SecretBox,
  clock: Clock,
  accessTtlSeconds: number,
): Promise<{ kid: string; retired: number; deleted: number }> {
  const now = clock.now();
  // Tokens signed just before retirement stay valid for their full lifetime (+ clock skew margin).
  const verifyUntil = new Date(now.getTime() + (accessTtlSeconds + 60) * 1000);
  const kid = await createSigningKey(db, box);
  const k = schema.signingKeys;
  const retired = await db
    .update(k)
    .set({ retiredAt: now, verifyUntil })
    .where(and(isNull(k.retiredAt), ne(k.kid, kid)))
    .returning({ kid: k.kid });
  const deleted = await db.delete(k).where(lt(k.verifyUntil, now)).returning({ kid: k.kid });
  return { kid, retired: retired.length, deleted: deleted.length };
}

export function createKeyStore(db: Db, box: SecretBox, clock: Clock): KeyStore {
  let verifyKeys = new Map<string, VerifyKey>();
  let signer: { kid: string; key: CryptoKey } | null = null;
  let loadedAt = 0;
  let lastMissReload = 0;

  async function load() {
    const k = schema.signingKeys;
    const now = clock.now();
    const rows = await db
      .select()
      .from(k)
      .where(or(isNull(k.verifyUntil), gt(k.verifyUntil, now)))
      .orderBy(desc(k.createdAt));
    const next = new Map<string, VerifyKey>();
    for (const r of rows) {
      next.set(r.kid, {
        kid: r.kid,
        jwk: r.publicJwk as JWK,
        key: (await importJWK(r.publicJwk as JWK, r.alg)) as CryptoKey,
      });
    }
    const active = rows.find((r) => r.retiredAt === null);
    signer = active
      ? {
          kid: active.kid,
          key: (await importPKCS8(box.decrypt(active.privateKeyEnc), active.alg)) as CryptoKey,
        }
      : null;
    verifyKeys = next;
    loadedAt = Date.now();
  }

  const stale = () => Date.now() - loadedAt > 60_000;

  return {
    async signingKey() {
      if (!signer || stale()) await load();
      if (!signer) {
        await createSigningKey(db, box);
        await load();
      }
      return signer!;
    },
    async verifyKey(kid) {
      if (stale()) await load();
      let found = verifyKeys.get(kid);
      if (!found && Date.now() - lastMissReload > 1000) {
        lastMissReload = Date.now();
        await load();
        found = verifyKeys.get(kid);
      }
      return found?.key ?? null;
    },
    async jwks() {
      if (stale() || verifyKeys.size === 0) await load();
      return { keys: [...verifyKeys.values()].map((v) => v.jwk) };
    },
    refresh: load,
  };
}
