import { createHash, randomBytes } from "node:crypto";
import { AppError, type Clock } from "@vpnpanel/common";
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { JWT_ALG, type KeyStore } from "./signing-keys";

export const ACCESS_AUDIENCE = "vpnpanel-api";

export interface AccessClaims {
  sub: string;
  ver: number;
  sid: string;
}

export interface TokenSettings {
  issuer: string;
  accessTtlSeconds: number;
}

export async function signAccessToken(
  keys: KeyStore,
  s: TokenSettings,
  clock: Clock,
  claims: AccessClaims,
): Promise<{ token: string; expiresAt: Date }> {
  const { kid, key } = await keys.signingKey();
  const iat = Math.floor(clock.now().getTime() / 1000);
  const exp = iat + s.accessTtlSeconds;
  const token = await new SignJWT({ ver: claims.ver, sid: claims.sid })
    .setProtectedHeader({ alg: JWT_ALG, kid, typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuer(s.issuer)
    .setAudience(ACCESS_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key);
  return { token, expiresAt: new Date(exp * 1000) };
}

const invalid = (why: string) => new AppError("unauthenticated", `invalid access token: ${why}`);

/** Verifies signature (by kid), algorithm, issuer, audience and expiry; every failure is a 401. */
export async function verifyAccessToken(
  keys: KeyStore,
  s: TokenSettings,
  clock: Clock,
  token: string,
): Promise<AccessClaims> {
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== JWT_ALG) throw invalid("unsupported algorithm");
    kid = header.kid;
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw invalid("malformed");
  }
  if (!kid) throw invalid("missing key id");
  const key = await keys.verifyKey(kid);
  if (!key) throw invalid("unknown key id");
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [JWT_ALG],
      issuer: s.issuer,
      audience: ACCESS_AUDIENCE,
      currentDate: clock.now(),
    });
    if (
      typeof payload.sub !== "string" ||
      typeof payload.ver !== "number" ||
      typeof payload.sid !== "string"
    ) {
      throw invalid("missing claims");
    }
    return { sub: payload.sub, ver: payload.ver, sid: payload.sid };
  } catch (e) {
    if (e instanceof AppError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw invalid("expired");
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw invalid("bad signature");
    throw invalid("rejected");
  }
}

/** Opaque refresh token; only its SHA-256 is stored. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = `rt_${randomBytes(32).toString("base64url")}`;
  return { token, hash: hashRefreshToken(token) };
}

export function hashRefreshToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
