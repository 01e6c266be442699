import { AppError, conflict, newId, type SecretBox } from "@vpnpanel/common";
import { type DbOrTx, queryRows, schema } from "@vpnpanel/db";
import { type FieldIssue, validateUserName } from "@vpnpanel/domain";
import { sql } from "drizzle-orm";
import { generateCredentials, type SealedCredentials, sealCredentials } from "../credentials/credentials";
import { assignNewSubscriptions } from "../desired-state/assignment";
import type { IpPools } from "../ip-pools/ip-pools";
import { DEFAULT_POOL_ID } from "../ip-pools/ip-pools";
import { ENGINES, type Engine } from "../plans/plan-rules";
import { optTsParam, textArray, tsParam } from "../shared/sql-values";
import { issueSubscriptionToken } from "../subscriptions/subscription-token";
import { initialSchedule, initialState, type Terms } from "../subscriptions/terms";

// Creating subscribers, one or thousands, with the same set-based statements: users, credentials,
// address allocations, subscriptions, usage rows and outbox events are each ONE `INSERT … SELECT FROM
// unnest(…)`. Everything slow and not transactional (key generation, encryption) happens before the
// transaction; the transaction only writes.

export interface NewUser {
  username: string;
  note?: string | null;
  /** Engine override (null: whatever the plan allows). */
  engines?: Engine[] | null;
}

export interface PreparedUser {
  userId: string;
  subscriptionId: string;
  username: string;
  note: string | null;
  engines: Engine[] | null;
  credentials: SealedCredentials;
  token: string;
  tokenHash: string;
  tokenEnc: string;
}

/** Validates names (reporting the item's position) and builds every secret outside the transaction. */
export async function prepareUsers(
  box: SecretBox,
  users: NewUser[],
  fieldPrefix = "",
): Promise<PreparedUser[]> {
  const issues: FieldIssue[] = [];
  const seen = new Map<string, number>();
  users.forEach((u, i) => {
    const field = `${fieldPrefix}${fieldPrefix ? `[${i}].` : ""}username`;
    const v = validateUserName(u.username, field);
    if (!v.ok) issues.push(...v.issues);
    const key = u.username.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      issues.push({ field, message: `repeats ${fieldPrefix}[${first}].username "${u.username}"` });
    } else seen.set(key, i);
    if (u.engines && new Set(u.engines).size !== u.engines.length)
      issues.push({ field: field.replace(/username$/, "engines"), message: "must not repeat an engine" });
  });
  const first = issues[0];
  if (first) {
    throw new AppError("validation_failed", `${first.field}: ${first.message}`, {
      field: first.field,
      issues,
    });
  }
  const creds = await generateCredentials(users.length);
  return users.map((u, i) => {
    const userId = newId("usr");
    const subscriptionId = newId("sub");
    const token = issueSubscriptionToken(box, subscriptionId);
    return {
      userId,
      subscriptionId,
      username: u.username,
      note: u.note ?? null,
      engines: u.engines ? ENGINES.filter((e) => u.engines!.includes(e)) : null,
      credentials: sealCredentials(box, userId, creds[i]!),
      token: token.token,
      tokenHash: token.hash,
      tokenEnc: token.enc,
    };
  });
}

export interface InsertResult {
  state: ReturnType<typeof initialState>;
}

/**
 * Inserts prepared users with one subscription each on `terms`, inside the caller's transaction.
 * Names already taken in the tenant answer 409 naming them; an exhausted address pool answers 409.
 */
export async function insertUsers(
  tx: DbOrTx,
  deps: { pools: IpPools },
  tenantId: string,
  users: PreparedUser[],
  terms: Terms,
  now: Date,
  explicitExpiry: Date | null,
): Promise<InsertResult> {
  const taken = await queryRows<{ username: string }>(
    tx,
    sql`SELECT username FROM users WHERE tenant_id = ${tenantId}
        AND lower(username) = ANY(${textArray(users.map((u) => u.username.toLowerCase()))}) LIMIT 5`,
  );
  if (taken.length > 0) {
    const names = taken.map((t) => `"${t.username}"`).join(", ");
    throw conflict(`user name already taken in this tenant: ${names}`, { field: "username" });
  }
  const ids = users.map((u) => u.userId);
  const subIds = users.map((u) => u.subscriptionId);
  const at = tsParam(now);
  await tx.execute(sql`
    INSERT INTO users (id, tenant_id, username, note, engines, created_at, updated_at)
    SELECT t.id, ${tenantId}, t.username, t.note,
           CASE WHEN t.engines IS NULL THEN NULL ELSE string_to_array(t.engines, ',') END, ${at}, ${at}
    FROM unnest(${textArray(ids)}, ${textArray(users.map((u) => u.username))},
                ${textArray(users.map((u) => u.note))},
                ${textArray(users.map((u) => u.engines?.join(",") ?? null))}) AS t(id, username, note, engines)`);

  await deps.pools.allocate(tx, DEFAULT_POOL_ID, ids);

  const c = users.map((u) => u.credentials);
  await tx.execute(sql`
    INSERT INTO credentials (user_id, tenant_id, xray_uuid, trojan_password_enc, shadowsocks_password_enc,
                             wg_private_key_enc, wg_public_key, wg_preshared_key_enc, rotated_at)
    SELECT t.u, ${tenantId}, t.x::uuid, t.tp, t.sp, t.wk, t.wp, t.ws, ${at}
    FROM unnest(${textArray(ids)}, ${textArray(c.map((x) => x.xrayUuid))},
                ${textArray(c.map((x) => x.trojanPasswordEnc))}, ${textArray(c.map((x) => x.shadowsocksPasswordEnc))},
                ${textArray(c.map((x) => x.wgPrivateKeyEnc))}, ${textArray(c.map((x) => x.wgPublicKey))},
                ${textArray(c.map((x) => x.wgPresharedKeyEnc))}) AS t(u, x, tp, sp, wk, wp, ws)`);

  const schedule = initialSchedule(terms, now, explicitExpiry);
  const state = initialState(terms.quotaBytes, schedule, now);
  await tx.execute(sql`
    INSERT INTO subscriptions (id, tenant_id, user_id, plan_id, state, quota_bytes, engines, reset_strategy,
      reset_anchor, hold_mode, duration_seconds, started_at, expires_at, hold_deadline, next_reset_at,
      next_plan_id, token_hash, token_enc, state_reason, state_changed_at, created_at, updated_at)
    SELECT t.id, ${tenantId}, t.u, ${terms.planId}::text, ${state}, ${terms.quotaBytes?.toString() ?? null}::bigint,
      ${sql.param(terms.baseEngines)}::text[], ${terms.resetStrategy}, ${terms.resetAnchor}, ${terms.holdMode},
      ${terms.durationSeconds}::bigint, ${optTsParam(schedule.startedAt)}, ${optTsParam(schedule.expiresAt)},
      ${optTsParam(schedule.holdDeadline)}, ${optTsParam(schedule.nextResetAt)}, ${terms.nextPlanId}::text,
      t.th, t.te, 'created', ${at}, ${at}, ${at}
    FROM unnest(${textArray(subIds)}, ${textArray(ids)}, ${textArray(users.map((u) => u.tokenHash))},
                ${textArray(users.map((u) => u.tokenEnc))}) AS t(id, u, th, te)`);
  await tx.execute(sql`INSERT INTO subscription_usage (subscription_id) SELECT unnest(${textArray(subIds)})`);
  // Nodes are chosen here, by the tenant's strategy, not later by the outbox consumer: the
  // subscription URL handed out with the 201 must already list them (a client that fetches it at once
  // would otherwise get a document without servers and may not fetch again for hours). The consumer
  // still reconciles the nodes' desired state from the user.created event.
  await assignNewSubscriptions(tx, subIds);
  await tx.execute(sql`
    INSERT INTO ${schema.outbox} (tenant_id, topic, subject_id, payload)
    SELECT ${tenantId}, 'user.created', t.s,
           jsonb_build_object('subscription_id', t.s, 'user_id', t.u, 'username', t.n, 'state', ${state}::text,
                              'revision', 1)
    FROM unnest(${textArray(subIds)}, ${textArray(ids)}, ${textArray(users.map((u) => u.username))})
         WITH ORDINALITY AS t(s, u, n, i)
    ORDER BY t.i`);
  return { state };
}
