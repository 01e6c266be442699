import { AppError, type Clock, newId } from "@vpnpanel/common";
import type { RateLimiter } from "@vpnpanel/coord";
import { type Db, type DbOrTx, queryRows, schema } from "@vpnpanel/db";
import { and, eq, isNull, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { type Actor, systemActor } from "../rbac/actor";
import { isRole, type Role } from "../rbac/permissions";
import type { PasswordHasher } from "./passwords";
import type { KeyStore } from "./signing-keys";
import {
  hashRefreshToken,
  newRefreshToken,
  signAccessToken,
  type TokenSettings,
  verifyAccessToken,
} from "./tokens";

export interface AuthDeps {
  db: Db;
  keys: KeyStore;
  hasher: PasswordHasher;
  clock: Clock;
  rateLimiter: RateLimiter;
  settings: TokenSettings & {
    refreshTtlSeconds: number;
    loginLimitPerIp: number;
    loginLimitPerAccount: number;
    loginWindowSeconds: number;
  };
}

export interface SessionTokens {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token: string;
  refresh_expires_at: string;
}

export interface RequestMeta {
  requestId?: string;
  sourceIp?: string;
  userAgent?: string;
}

const badCredentials = () => new AppError("unauthenticated", "invalid email or password");
const badRefresh = () => new AppError("unauthenticated", "invalid refresh token");

export function createAuthService(d: AuthDeps) {
  // A fixed hash to verify against when the account does not exist, so response time does not reveal
  // which emails are registered.
  let dummyHash: Promise<string> | null = null;
  const dummy = () => {
    dummyHash ??= d.hasher.hash("not-a-real-password-0000");
    return dummyHash;
  };

  async function limit(key: string, max: number) {
    const r = await d.rateLimiter.hit(key, max, d.settings.loginWindowSeconds);
    if (!r.allowed) {
      throw new AppError("rate_limited", "too many login attempts; try again later", {
        retryAfterSeconds: r.retryAfterSeconds,
      });
    }
  }

  // Signing may read the key table, so tokens are minted BEFORE the transaction that stores them:
  // PGlite is one connection, and a query outside an open transaction would wait for it forever.
  async function mint(adminId: string, tokenVersion: number, familyId: string) {
    const refresh = newRefreshToken();
    const refreshExpires = new Date(d.clock.now().getTime() + d.settings.refreshTtlSeconds * 1000);
    const access = await signAccessToken(d.keys, d.settings, d.clock, {
      sub: adminId,
      ver: tokenVersion,
      sid: familyId,
    });
    return { adminId, tokenVersion, familyId, refresh, refreshExpires, access };
  }

  async function store(
    tx: DbOrTx,
    m: Awaited<ReturnType<typeof mint>>,
    meta: RequestMeta,
  ): Promise<SessionTokens> {
    await tx.insert(schema.refreshTokens).values({
      id: newId("rt"),
      familyId: m.familyId,
      adminId: m.adminId,
      tokenHash: m.refresh.hash,
      tokenVersion: m.tokenVersion,
      createdAt: d.clock.now(),
      expiresAt: m.refreshExpires,
      sourceIp: meta.sourceIp ?? null,
      userAgent: meta.userAgent?.slice(0, 300) ?? null,
    });
    return {
      access_token: m.access.token,
      token_type: "Bearer",
      expires_in: d.settings.accessTtlSeconds,
      refresh_token: m.refresh.token,
      refresh_expires_at: m.refreshExpires.toISOString(),
    };
  }

  async function revokeFamily(tx: DbOrTx, familyId: string) {
    const rt = schema.refreshTokens;
    await tx
      .update(rt)
      .set({ revokedAt: d.clock.now() })
      .where(and(eq(rt.familyId, familyId), isNull(rt.revokedAt)));
  }

  return {
    async login(email: string, password: string, meta: RequestMeta): Promise<SessionTokens> {
      const normalized = email.trim().toLowerCase();
      await limit(`login:ip:${meta.sourceIp ?? "unknown"}`, d.settings.loginLimitPerIp);
      await limit(`login:account:${normalized}`, d.settings.loginLimitPerAccount);
      const [admin] = await d.db
        .select()
        .from(schema.admins)
        .where(sql`lower(${schema.admins.email}) = ${normalized}`)
        .limit(1);
      if (!admin) {
        await d.hasher.verify(await dummy(), password);
        throw badCredentials();
      }
      const ok = await d.hasher.verify(admin.passwordHash, password);
      const actor: Actor = {
        ...systemActor(meta.requestId),
        kind: "admin",
        id: admin.id,
        ...(meta.sourceIp ? { sourceIp: meta.sourceIp } : {}),
      };
      if (!ok || admin.status !== "active") {
        await writeAudit(d.db, actor, {
          action: "auth.login_failed",
          targetType: "admin",
          targetId: admin.id,
          summary: { reason: ok ? "disabled" : "bad_password" },
        });
        throw ok ? new AppError("unauthenticated", "account is disabled") : badCredentials();
      }
      await d.rateLimiter.reset(`login:account:${normalized}`);
      const minted = await mint(admin.id, admin.tokenVersion, newId("sess"));
      return d.db.transaction(async (tx) => {
        await tx
          .update(schema.admins)
          .set({ lastLoginAt: d.clock.now() })
          .where(eq(schema.admins.id, admin.id));
        await writeAudit(tx, actor, { action: "auth.login", targetType: "admin", targetId: admin.id });
        return store(tx, minted, meta);
      });
    },

    /** Rotates a refresh token. Presenting a used or revoked one revokes its whole family (theft). */
    async refresh(token: string, meta: RequestMeta): Promise<SessionTokens> {
      const rt = schema.refreshTokens;
      const hash = hashRefreshToken(token);
      const now = d.clock.now();
      const [claimed] = await d.db
        .update(rt)
        .set({ usedAt: now })
        .where(and(eq(rt.tokenHash, hash), isNull(rt.usedAt), isNull(rt.revokedAt)))
        .returning();
      if (!claimed) {
        const [known] = await d.db.select().from(rt).where(eq(rt.tokenHash, hash)).limit(1);
        if (known) {
          await d.db.transaction(async (tx) => {
            await revokeFamily(tx, known.familyId);
            await writeAudit(
              tx,
              { ...systemActor(meta.requestId), ...(meta.sourceIp ? { sourceIp: meta.sourceIp } : {}) },
              {
                action: "auth.refresh_reuse_detected",
                targetType: "admin",
                targetId: known.adminId,
                summary: { family: known.familyId },
              },
            );
          });
        }
        throw badRefresh();
      }
      if (claimed.expiresAt <= now) throw badRefresh();
      const [admin] = await d.db
        .select()
        .from(schema.admins)
        .where(eq(schema.admins.id, claimed.adminId))
        .limit(1);
      if (!admin || admin.status !== "active" || admin.tokenVersion !== claimed.tokenVersion) {
        await revokeFamily(d.db, claimed.familyId);
        throw badRefresh();
      }
      return store(d.db, await mint(admin.id, admin.tokenVersion, claimed.familyId), meta);
    },

    async logout(actor: Actor): Promise<void> {
      if (!actor.sessionId) return;
      await d.db.transaction(async (tx) => {
        await revokeFamily(tx, actor.sessionId!);
        await writeAudit(tx, actor, { action: "auth.logout", targetType: "admin", targetId: actor.id });
      });
    },

    /**
     * Resolves the bearer token to an Actor with the account's current state: a disabled account,
     * a bumped token_version or a logged-out session is rejected even while the JWT is unexpired.
     */
    async authenticate(bearer: string, meta: RequestMeta): Promise<Actor> {
      const claims = await verifyAccessToken(d.keys, d.settings, d.clock, bearer);
      const rows = await queryRows<{
        email: string;
        status: string;
        is_platform_owner: boolean;
        token_version: number;
        session_revoked: boolean;
        memberships: Array<{ tenant_id: string; role: string }> | string | null;
      }>(
        d.db,
        sql`
        SELECT a.email, a.status, a.is_platform_owner, a.token_version,
          EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = ${claims.sid} AND r.revoked_at IS NOT NULL) AS session_revoked,
          (SELECT coalesce(json_agg(json_build_object('tenant_id', m.tenant_id, 'role', m.role)), '[]'::json)
             FROM memberships m WHERE m.admin_id = a.id) AS memberships
        FROM admins a WHERE a.id = ${claims.sub}`,
      );
      const row = rows[0];
      if (!row) throw new AppError("unauthenticated", "invalid access token: unknown account");
      if (row.status !== "active") throw new AppError("unauthenticated", "account is disabled");
      if (row.token_version !== claims.ver)
        throw new AppError("unauthenticated", "invalid access token: revoked");
      if (row.session_revoked) throw new AppError("unauthenticated", "invalid access token: session ended");
      const list =
        typeof row.memberships === "string" ? JSON.parse(row.memberships) : (row.memberships ?? []);
      const memberships = new Map<string, Role>();
      for (const m of list as Array<{ tenant_id: string; role: string }>)
        if (isRole(m.role)) memberships.set(m.tenant_id, m.role);
      return {
        kind: "admin",
        id: claims.sub,
        email: row.email,
        isPlatformOwner: row.is_platform_owner,
        memberships,
        sessionId: claims.sid,
        ...(meta.requestId ? { requestId: meta.requestId } : {}),
        ...(meta.sourceIp ? { sourceIp: meta.sourceIp } : {}),
      };
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
