import { AppError, type Clock, conflict, notFound, type SecretBox } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { validateUserName } from "@vpnpanel/domain";
import { sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import {
  CREDENTIAL_KINDS,
  type CredentialKind,
  generateCredentials,
  sealCredentials,
} from "../credentials/credentials";
import type { IpPools } from "../ip-pools/ip-pools";
import { appendOutbox } from "../outbox/outbox";
import { type Engine, effectiveEngines } from "../plans/plan-rules";
import { planInTenant } from "../plans/plans-service";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { isUniqueViolation } from "../shared/db-errors";
import { decodeCursor, keysetPage } from "../shared/pagination";
import { toDate, toNumber, tsParam } from "../shared/sql-values";
import { visibleTenantsSql } from "../shared/tenant-scope";
import { openSubscriptionToken, subscriptionUrl } from "../subscriptions/subscription-token";
import { PLANLESS_TERMS, type Terms, termsOfPlan } from "../subscriptions/terms";
import { insertUsers, type NewUser, prepareUsers } from "./create-users";
import {
  cursorValue,
  pageOrder,
  selectUserDetail,
  selectUserPage,
  type UserFilter,
  type UserRow,
  userView,
} from "./user-queries";

/** The subscription terms a create request asks for: a plan's, with optional overrides. */
export interface TermsInput {
  planId?: string;
  quotaBytes?: bigint | null;
  durationSeconds?: number | null;
  /** A fixed end date instead of the duration. */
  expiresAt?: Date | null;
}

export type CreateUserInput = NewUser & TermsInput;
export interface BulkCreateInput extends TermsInput {
  users: NewUser[];
}

export interface UsersDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  pools: IpPools;
  publicUrl: string;
  bulkMax: number;
}

async function resolveTerms(tx: DbOrTx, tenantId: string, input: TermsInput): Promise<Terms> {
  const base = input.planId ? termsOfPlan(await planInTenant(tx, tenantId, input.planId)) : PLANLESS_TERMS;
  const terms: Terms = {
    ...base,
    ...(input.quotaBytes !== undefined ? { quotaBytes: input.quotaBytes } : {}),
    ...(input.durationSeconds !== undefined ? { durationSeconds: input.durationSeconds } : {}),
  };
  if (input.expiresAt && terms.holdMode !== "none") {
    throw new AppError(
      "validation_failed",
      "expires_at: the plan holds new subscriptions; their end is set when they start (use duration_seconds)",
      { field: "expires_at" },
    );
  }
  return terms;
}

export function createUsersService(deps: UsersDeps) {
  const { db, box, clock, pools } = deps;

  const visible = (actor: Actor) => visibleTenantsSql(actor, sql`u.tenant_id`);

  async function detail(row: UserRow) {
    let url: string | null = null;
    try {
      url = subscriptionUrl(
        deps.publicUrl,
        openSubscriptionToken(box, row.subscription_id, String(row.token_enc)),
      );
    } catch {
      url = null; // a token sealed under another key: reissue it
    }
    const offset = toNumber(row.ip_offset);
    const addresses =
      offset !== null && row.pool_id ? await pools.addresses(db, String(row.pool_id), offset) : null;
    return userView(row, {
      subscriptionUrl: url,
      credentials: {
        xray_uuid: (row.xray_uuid as string | null) ?? null,
        wg_public_key: (row.wg_public_key as string | null) ?? null,
        ipv4: addresses?.ipv4 ?? null,
        ipv6: addresses?.ipv6 ?? null,
        rotated_at: toDate(row.rotated_at)?.toISOString() ?? null,
      },
    });
  }

  /** The user row if the actor can see its tenant (else 404), after the permission check (else 403). */
  async function load(actor: Actor, id: string, permission: "users:read" | "users:write") {
    const row = await selectUserDetail(db, id, visible(actor));
    if (!row) throw notFound("user");
    requireTenantPermission(actor, row.tenant_id, permission);
    return row;
  }

  async function get(actor: Actor, id: string) {
    return detail(await load(actor, id, "users:read"));
  }

  return {
    get,

    async create(actor: Actor, tenantHint: string | undefined, input: CreateUserInput) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "users:write");
      const [prepared] = await prepareUsers(box, [input]);
      const now = clock.now();
      await db.transaction(async (tx) => {
        const terms = await resolveTerms(tx, tenantId, input);
        const { state } = await insertUsers(
          tx,
          { pools },
          tenantId,
          [prepared!],
          terms,
          now,
          input.expiresAt ?? null,
        );
        await writeAudit(tx, actor, {
          tenantId,
          action: "user.create",
          targetType: "user",
          targetId: prepared!.userId,
          summary: { username: prepared!.username, plan_id: terms.planId, state },
        });
      });
      return get(actor, prepared!.userId);
    },

    /** Creates up to BULK_MAX_USERS users in one transaction of set-based statements; all or none. */
    async bulkCreate(actor: Actor, tenantHint: string | undefined, input: BulkCreateInput) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "users:write");
      if (input.users.length === 0 || input.users.length > deps.bulkMax) {
        throw new AppError("validation_failed", `users: send 1 to ${deps.bulkMax} users per request`, {
          field: "users",
        });
      }
      const prepared = await prepareUsers(box, input.users, "users");
      const now = clock.now();
      const { state, terms } = await db.transaction(async (tx) => {
        const terms = await resolveTerms(tx, tenantId, input);
        const r = await insertUsers(tx, { pools }, tenantId, prepared, terms, now, input.expiresAt ?? null);
        await writeAudit(tx, actor, {
          tenantId,
          action: "user.bulk_create",
          targetType: "user",
          summary: {
            count: prepared.length,
            plan_id: terms.planId,
            state: r.state,
            first_id: prepared[0]!.userId,
            last_id: prepared.at(-1)!.userId,
          },
        });
        return { state: r.state, terms };
      });
      return {
        created: prepared.length,
        items: prepared.map((p) => ({
          id: p.userId,
          username: p.username,
          subscription_id: p.subscriptionId,
          state,
          plan_id: terms.planId,
          subscription_url: subscriptionUrl(deps.publicUrl, p.token),
        })),
      };
    },

    async list(
      actor: Actor,
      tenantHint: string | undefined,
      filter: UserFilter,
      page: { limit: number; cursor?: string },
    ) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "users:read");
      const { kind } = pageOrder(filter);
      const rows = await selectUserPage(db, tenantId, filter, {
        limit: page.limit,
        ...(page.cursor ? { after: decodeCursor(page.cursor, kind) } : {}),
      });
      const { items, nextCursor } = keysetPage(rows, page.limit, kind, (r) => cursorValue(filter, r));
      return { items: items.map((r) => userView(r)), nextCursor };
    },

    /** Renames or re-notes a user. A rename changes what subscribers see (remarks), so it bumps the revision. */
    async update(actor: Actor, id: string, patch: { username?: string; note?: string | null }) {
      const current = await load(actor, id, "users:write");
      if (patch.username !== undefined) {
        const v = validateUserName(patch.username);
        if (!v.ok) {
          const issue = v.issues[0]!;
          throw new AppError("validation_failed", `${issue.field}: ${issue.message}`, { field: issue.field });
        }
      }
      const now = clock.now();
      const changes: Record<string, { before: unknown; after: unknown }> = {};
      if (patch.username !== undefined && patch.username !== current.username)
        changes.username = { before: current.username, after: patch.username };
      if (patch.note !== undefined && patch.note !== current.note)
        changes.note = { before: current.note ?? null, after: patch.note };
      if (Object.keys(changes).length === 0) return detail(current);
      try {
        await db.transaction(async (tx) => {
          await tx.execute(sql`UPDATE users SET
              username = ${patch.username ?? String(current.username)},
              note = ${patch.note === undefined ? ((current.note as string | null) ?? null) : patch.note}::text,
              updated_at = ${tsParam(now)}
            WHERE id = ${id}`);
          const [sub] = await queryRows<{ revision: unknown }>(
            tx,
            sql`UPDATE subscriptions SET revision = revision + ${changes.username ? 1 : 0}, updated_at = ${tsParam(now)}
                WHERE id = ${current.subscription_id} RETURNING revision::text AS revision`,
          );
          await appendOutbox(tx, {
            tenantId: current.tenant_id,
            topic: "user.updated",
            subjectId: current.subscription_id,
            payload: {
              subscription_id: current.subscription_id,
              user_id: id,
              changed: Object.keys(changes),
              username: patch.username ?? current.username,
              revision: toNumber(sub?.revision),
            },
          });
          await writeAudit(tx, actor, {
            tenantId: current.tenant_id,
            action: "user.update",
            targetType: "user",
            targetId: id,
            summary: changes,
          });
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw conflict(`user name already taken in this tenant: "${patch.username}"`, {
            field: "username",
          });
        throw e;
      }
      return get(actor, id);
    },

    /** Deletes a user with its subscription, credentials and address (which returns to the pool). */
    async remove(actor: Actor, id: string) {
      const current = await load(actor, id, "users:write");
      await db.transaction(async (tx) => {
        // Locks the subscription first, so no transition lands between reading its state and the delete.
        const [sub] = await queryRows<{ id: string; state: string; wg_public_key: string | null }>(
          tx,
          sql`SELECT s.id, s.state, c.wg_public_key FROM subscriptions s
              LEFT JOIN credentials c ON c.user_id = s.user_id
              WHERE s.user_id = ${id} FOR UPDATE OF s`,
        );
        const deleted = await queryRows<{ id: string }>(
          tx,
          sql`DELETE FROM users WHERE id = ${id} RETURNING id`,
        );
        if (deleted.length === 0) throw notFound("user");
        if (sub) {
          await appendOutbox(tx, {
            tenantId: current.tenant_id,
            topic: "user.deleted",
            subjectId: sub.id,
            payload: {
              subscription_id: sub.id,
              user_id: id,
              username: current.username,
              state: "deleted",
              prev_state: sub.state,
              wg_public_key: sub.wg_public_key,
            },
          });
        }
        await writeAudit(tx, actor, {
          tenantId: current.tenant_id,
          action: "user.delete",
          targetType: "user",
          targetId: id,
          summary: {
            username: current.username,
            subscription_id: sub?.id ?? null,
            state: sub?.state ?? null,
          },
        });
      });
    },

    /** Sets the engine override (null: the plan's engines); it must leave at least one engine. */
    async setEngines(actor: Actor, id: string, engines: Engine[] | null) {
      const current = await load(actor, id, "users:write");
      const planEngines = current.engines as Engine[];
      const before = effectiveEngines(planEngines, (current.user_engines as Engine[] | null) ?? null);
      const after = effectiveEngines(planEngines, engines);
      if (engines !== null && after.length === 0) {
        throw new AppError(
          "validation_failed",
          `engines: the subscription allows only ${planEngines.join(", ") || "no engine"}; the override must keep at least one`,
          { field: "engines" },
        );
      }
      const now = clock.now();
      await db.transaction(async (tx) => {
        await tx.execute(sql`UPDATE users SET engines = ${engines ? sql`${sql.param(engines)}::text[]` : sql`NULL`},
            updated_at = ${tsParam(now)} WHERE id = ${id}`);
        const [sub] = await queryRows<{ revision: unknown }>(
          tx,
          sql`UPDATE subscriptions SET revision = revision + 1, updated_at = ${tsParam(now)}
              WHERE id = ${current.subscription_id} RETURNING revision::text AS revision`,
        );
        await appendOutbox(tx, {
          tenantId: current.tenant_id,
          topic: "user.engines_changed",
          subjectId: current.subscription_id,
          payload: {
            subscription_id: current.subscription_id,
            user_id: id,
            engines: after,
            prev_engines: before,
            override: engines,
            revision: toNumber(sub?.revision),
          },
        });
        await writeAudit(tx, actor, {
          tenantId: current.tenant_id,
          action: "user.set_engines",
          targetType: "user",
          targetId: id,
          summary: { override: { before: current.user_engines ?? null, after: engines }, engines: after },
        });
      });
      return get(actor, id);
    },

    /** Replaces the chosen secrets (default: all). The address stays; nodes get the new keys. */
    async rotateCredentials(actor: Actor, id: string, kinds: readonly CredentialKind[] = CREDENTIAL_KINDS) {
      const current = await load(actor, id, "users:write");
      const fresh = sealCredentials(box, id, (await generateCredentials(1))[0]!);
      const now = clock.now();
      const has = (k: CredentialKind) => kinds.includes(k);
      await db.transaction(async (tx) => {
        const set = [
          has("xray") ? sql`xray_uuid = ${fresh.xrayUuid}::uuid` : null,
          has("trojan") ? sql`trojan_password_enc = ${fresh.trojanPasswordEnc}` : null,
          has("shadowsocks") ? sql`shadowsocks_password_enc = ${fresh.shadowsocksPasswordEnc}` : null,
          has("wireguard")
            ? sql`wg_private_key_enc = ${fresh.wgPrivateKeyEnc}, wg_public_key = ${fresh.wgPublicKey},
                  wg_preshared_key_enc = ${fresh.wgPresharedKeyEnc}`
            : null,
        ].filter((s) => s !== null);
        const [row] = await queryRows<{ prev_public_key: string; public_key: string }>(
          tx,
          sql`UPDATE credentials c SET ${sql.join(set, sql`, `)}, rotated_at = ${tsParam(now)}
              FROM (SELECT user_id, wg_public_key FROM credentials WHERE user_id = ${id} FOR UPDATE) old
              WHERE c.user_id = old.user_id
              RETURNING old.wg_public_key AS prev_public_key, c.wg_public_key AS public_key`,
        );
        if (!row) throw notFound("credentials");
        const [sub] = await queryRows<{ revision: unknown }>(
          tx,
          sql`UPDATE subscriptions SET revision = revision + 1, updated_at = ${tsParam(now)}
              WHERE id = ${current.subscription_id} RETURNING revision::text AS revision`,
        );
        await appendOutbox(tx, {
          tenantId: current.tenant_id,
          topic: "user.credentials_rotated",
          subjectId: current.subscription_id,
          payload: {
            subscription_id: current.subscription_id,
            user_id: id,
            kinds: [...kinds],
            wg_public_key: row.public_key,
            prev_wg_public_key: row.prev_public_key,
            revision: toNumber(sub?.revision),
          },
        });
        await writeAudit(tx, actor, {
          tenantId: current.tenant_id,
          action: "user.rotate_credentials",
          targetType: "user",
          targetId: id,
          summary: { kinds: [...kinds] },
        });
      });
      return get(actor, id);
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
