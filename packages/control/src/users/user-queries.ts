import { AppError } from "@vpnpanel/common";
import { type DbOrTx, queryRows } from "@vpnpanel/db";
import type { SubscriptionState } from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import { type Engine, effectiveEngines } from "../plans/plan-rules";
import { toBigInt, toDate, toNumber } from "../shared/sql-values";

// Reading subscribers: one row per user with its subscription and usage, and the search filters the
// list and the bulk operations share. Keyset pagination: newest first on the time-ordered user id,
// or alphabetical on the lowercased name for a name search; every page is an index range scan,
// however deep (see bench/lifecycle.ts for EXPLAIN at 1M rows).

export interface UserFilter {
  /** Case-insensitive name prefix. */
  username?: string;
  /** Words that must all occur in the note (whole words, any case). */
  note?: string;
  status?: SubscriptionState;
  planId?: string;
  userIds?: string[];
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * The note words as a tsquery: letters and digits only, so user text can never be query syntax.
 * Whole words (no prefix matching): exact lexemes have column statistics, so the planner can tell a
 * rare word (use the GIN index) from a common one (walk the id index and filter).
 */
export function noteQuery(note: string): string {
  const words = (note.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, 8);
  if (words.length === 0) {
    throw new AppError("validation_failed", "note: must contain at least one letter or digit", {
      field: "note",
    });
  }
  return words.join(" & ");
}

/** WHERE conditions over `u` (users) and `s` (subscriptions) for one tenant. */
export function filterConditions(tenantId: string, f: UserFilter): SQL[] {
  const where: SQL[] = [sql`u.tenant_id = ${tenantId}`];
  if (f.status) {
    // Stated on `s` so the planner can walk subscriptions_tenant_state_idx (tenant, state, user).
    where.push(sql`s.tenant_id = ${tenantId}`, sql`s.state = ${f.status}`);
  }
  if (f.username) {
    where.push(sql`(lower(u.username) COLLATE "C") LIKE ${`${escapeLike(f.username.toLowerCase())}%`}`);
  }
  if (f.note) {
    where.push(
      sql`u.note IS NOT NULL`,
      sql`to_tsvector('simple', u.note) @@ to_tsquery('simple', ${noteQuery(f.note)})`,
    );
  }
  if (f.planId) where.push(sql`s.plan_id = ${f.planId}`);
  if (f.userIds) where.push(sql`u.id = ANY(${sql.param(f.userIds)}::text[])`);
  return where;
}

export const userJoins = sql`FROM users u
  JOIN subscriptions s ON s.user_id = u.id
  LEFT JOIN subscription_usage su ON su.subscription_id = s.id`;

const listColumns = sql`u.id, u.tenant_id, u.username, u.note, u.engines AS user_engines, u.created_at,
  u.updated_at, s.id AS subscription_id, s.plan_id, s.state, s.state_reason, s.state_changed_at,
  s.quota_bytes::text AS quota_bytes, s.engines, s.reset_strategy, s.reset_anchor, s.hold_mode,
  s.duration_seconds::text AS duration_seconds, s.started_at, s.expires_at, s.hold_deadline,
  s.next_reset_at, s.next_plan_id, s.revision::text AS revision,
  coalesce(su.used_bytes, 0)::text AS used_bytes, coalesce(su.upload_bytes, 0)::text AS upload_bytes,
  coalesce(su.download_bytes, 0)::text AS download_bytes,
  coalesce(su.lifetime_bytes, 0)::text AS lifetime_bytes, su.last_used_at`;

const detailColumns = sql`${listColumns}, s.token_enc, c.xray_uuid::text AS xray_uuid, c.wg_public_key,
  c.rotated_at, ia.pool_id, ia."offset"::text AS ip_offset`;

const detailJoins = sql`${userJoins}
  LEFT JOIN credentials c ON c.user_id = u.id
  LEFT JOIN ip_allocations ia ON ia.user_id = u.id`;

export type UserRow = Record<string, unknown> & { id: string; tenant_id: string; subscription_id: string };

export async function selectUserDetail(db: DbOrTx, userId: string, visible: SQL): Promise<UserRow | null> {
  const [row] = await queryRows<UserRow>(
    db,
    sql`SELECT ${detailColumns} ${detailJoins} WHERE u.id = ${userId} AND ${visible} LIMIT 1`,
  );
  return row ?? null;
}

/** How a listing is ordered, and what its cursor holds. */
export function pageOrder(f: UserFilter) {
  if (f.username)
    return { kind: "users-name", key: sql`(lower(u.username) COLLATE "C")`, desc: false } as const;
  // With a status filter the page is read in subscription-index order (tenant, state, user).
  return { kind: "users", key: f.status ? sql`s.user_id` : sql`u.id`, desc: true } as const;
}

/** The cursor value of a row for the listing's order. */
export const cursorValue = (f: UserFilter, r: UserRow) =>
  f.username ? String(r.username).toLowerCase() : r.id;

/** The statement behind one page of the user list (exported so the benchmark can EXPLAIN it). */
export function userPageQuery(tenantId: string, f: UserFilter, page: { limit: number; after?: string }): SQL {
  const where = filterConditions(tenantId, f);
  const order = pageOrder(f);
  const direction = order.desc ? sql`DESC` : sql`ASC`;
  if (!f.status && !f.planId) {
    // Only user columns filter: choose the page's ids from `users` alone, then join the page. A
    // note word found in many notes then costs a sort of ids, not a join of every match.
    if (page.after !== undefined)
      where.push(order.desc ? sql`u.id < ${page.after}` : sql`${order.key} > ${page.after}`);
    return sql`SELECT ${listColumns}
      FROM (SELECT u.id FROM users u WHERE ${sql.join(where, sql` AND `)}
            ORDER BY ${order.key} ${direction} LIMIT ${page.limit + 1}) AS p
      JOIN users u ON u.id = p.id
      JOIN subscriptions s ON s.user_id = u.id
      LEFT JOIN subscription_usage su ON su.subscription_id = s.id
      ORDER BY ${order.key} ${direction}`;
  }
  if (page.after !== undefined) {
    if (order.desc) {
      // Both sides of the join are bounded, so neither index scan starts from the newest row.
      where.push(sql`u.id < ${page.after}`, sql`s.user_id < ${page.after}`);
    } else where.push(sql`${order.key} > ${page.after}`);
  }
  return sql`SELECT ${listColumns} ${userJoins} WHERE ${sql.join(where, sql` AND `)}
    ORDER BY ${order.key} ${direction} LIMIT ${page.limit + 1}`;
}

export function selectUserPage(
  db: DbOrTx,
  tenantId: string,
  f: UserFilter,
  page: { limit: number; after?: string },
): Promise<UserRow[]> {
  return queryRows<UserRow>(db, userPageQuery(tenantId, f, page));
}

const iso = (v: unknown) => toDate(v)?.toISOString() ?? null;
const bytes = (v: unknown) => {
  const b = toBigInt(v);
  return b === null ? null : Number(b);
};

/** The public half of a subscriber's credentials (secrets are never returned). */
export interface CredentialsView {
  xray_uuid: string | null;
  wg_public_key: string | null;
  ipv4: string | null;
  ipv6: string | null;
  rotated_at: string | null;
}

/** The API view of a subscriber (snake_case, as the REST layer sends it). */
export function userView(
  r: UserRow,
  extra: { subscriptionUrl?: string | null; credentials?: CredentialsView } = {},
) {
  const userEngines = (r.user_engines as Engine[] | null) ?? null;
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    username: String(r.username),
    note: (r.note as string | null) ?? null,
    engines: userEngines,
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
    subscription: {
      id: r.subscription_id,
      plan_id: (r.plan_id as string | null) ?? null,
      state: r.state as SubscriptionState,
      state_reason: (r.state_reason as string | null) ?? null,
      state_changed_at: iso(r.state_changed_at)!,
      quota_bytes: bytes(r.quota_bytes),
      used_bytes: bytes(r.used_bytes) ?? 0,
      upload_bytes: bytes(r.upload_bytes) ?? 0,
      download_bytes: bytes(r.download_bytes) ?? 0,
      lifetime_bytes: bytes(r.lifetime_bytes) ?? 0,
      started_at: iso(r.started_at),
      expires_at: iso(r.expires_at),
      duration_seconds: toNumber(r.duration_seconds),
      hold_mode: String(r.hold_mode),
      hold_deadline: iso(r.hold_deadline),
      reset_strategy: String(r.reset_strategy),
      reset_anchor: String(r.reset_anchor),
      next_reset_at: iso(r.next_reset_at),
      next_plan_id: (r.next_plan_id as string | null) ?? null,
      engines: effectiveEngines(r.engines as Engine[], userEngines),
      revision: toNumber(r.revision) ?? 0,
      last_used_at: iso(r.last_used_at),
      ...(extra.subscriptionUrl !== undefined ? { subscription_url: extra.subscriptionUrl } : {}),
    },
    ...(extra.credentials ? { credentials: extra.credentials } : {}),
  };
}
export type UserView = ReturnType<typeof userView>;
