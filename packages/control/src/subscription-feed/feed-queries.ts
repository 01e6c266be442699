import { type DbOrTx, queryRows } from "@vpnpanel/db";
import { type SQL, sql } from "drizzle-orm";
import type { FeedNodeRow, PoolRow } from "./feed-model";

// The feed's two reads. The head is per request and must stay one indexed lookup (batched over
// concurrent requests); the tenant snapshot is per tenant and config generation, read rarely.

/** What one subscription contributes to its document and ETag, by token hash. */
export interface HeadRow {
  token_hash: string;
  subscription_id: string;
  tenant_id: string;
  user_id: string;
  username: string;
  state: string;
  quota_bytes: string | null;
  expires_at: string | Date | null;
  engines: string[];
  user_engines: string[] | null;
  revision: string;
  sub_updated: string;
  user_updated: string;
  used_bytes: string;
  upload_bytes: string;
  download_bytes: string;
  token_enc: string;
  xray_uuid: string | null;
  trojan_password_enc: string | null;
  shadowsocks_password_enc: string | null;
  wg_private_key_enc: string | null;
  wg_preshared_key_enc: string | null;
  creds_stamp: string | null;
  pool_id: string | null;
  ip_offset: string | null;
  node_ids: string | null;
  tenant_active: boolean;
  generation: string;
}

interface HeadRaw {
  token_hash: string;
  subscription_id: string;
  tenant_id: string;
  user_id: string;
  state: string;
  quota_bytes: string | null;
  expires_at: string | Date | null;
  engines: string[];
  revision: string;
  sub_updated: string;
  token_enc: string;
  u: { username: string; engines: string[] | null; updated: string } | string;
  usage: { used: string; upload: string; download: string } | string | null;
  creds:
    | {
        xray_uuid: string;
        trojan: string;
        shadowsocks: string;
        wg_private: string;
        wg_psk: string;
        rotated: string;
      }
    | string
    | null;
  ip: { pool_id: string; offset: string } | string | null;
  node_ids: string | null;
  tenant_active: boolean | null;
  generation: string;
}

// One base relation and a scalar subquery per table: each is a primary-key probe, and the planner has
// no join order to search. With seven joined tables, planning alone cost more than executing a
// 64-token batch (≈1.2 ms vs ≈1 ms on PostgreSQL 15). Timestamps travel as µs stamps, never parsed.
const headSelect = sql`
  SELECT s.token_hash, s.id AS subscription_id, s.tenant_id, s.user_id, s.state,
    s.quota_bytes::text AS quota_bytes, s.expires_at, s.engines, s.revision::text AS revision,
    (extract(epoch FROM s.updated_at) * 1000000)::bigint::text AS sub_updated, s.token_enc,
    (SELECT json_build_object('username', u.username, 'engines', u.engines,
              'updated', (extract(epoch FROM u.updated_at) * 1000000)::bigint::text)
       FROM users u WHERE u.id = s.user_id) AS u,
    (SELECT json_build_object('used', us.used_bytes::text, 'upload', us.upload_bytes::text,
              'download', us.download_bytes::text)
       FROM subscription_usage us WHERE us.subscription_id = s.id) AS usage,
    (SELECT json_build_object('xray_uuid', c.xray_uuid, 'trojan', c.trojan_password_enc,
              'shadowsocks', c.shadowsocks_password_enc, 'wg_private', c.wg_private_key_enc,
              'wg_psk', c.wg_preshared_key_enc,
              'rotated', (extract(epoch FROM c.rotated_at) * 1000000)::bigint::text)
       FROM credentials c WHERE c.user_id = s.user_id) AS creds,
    (SELECT json_build_object('pool_id', ia.pool_id, 'offset', ia."offset"::text)
       FROM ip_allocations ia WHERE ia.user_id = s.user_id) AS ip,
    (SELECT string_agg(na.node_id, ',' ORDER BY na.node_id) FROM node_assignments na
      WHERE na.subscription_id = s.id) AS node_ids,
    (SELECT t.status = 'active' FROM tenants t WHERE t.id = s.tenant_id) AS tenant_active,
    coalesce((SELECT g.generation FROM sub_feed_generations g WHERE g.tenant_id = s.tenant_id), 0)::text
      AS generation
  FROM subscriptions s`;

const obj = <T>(v: T | string | null): T | null => (typeof v === "string" ? (JSON.parse(v) as T) : v);

function toHead(r: HeadRaw): HeadRow {
  const u = obj(r.u);
  const usage = obj(r.usage);
  const creds = obj(r.creds);
  const ip = obj(r.ip);
  return {
    token_hash: r.token_hash,
    subscription_id: r.subscription_id,
    tenant_id: r.tenant_id,
    user_id: r.user_id,
    username: u?.username ?? "",
    state: r.state,
    quota_bytes: r.quota_bytes,
    expires_at: r.expires_at,
    engines: r.engines,
    user_engines: u?.engines ?? null,
    revision: r.revision,
    sub_updated: r.sub_updated,
    user_updated: u?.updated ?? "",
    used_bytes: usage?.used ?? "0",
    upload_bytes: usage?.upload ?? "0",
    download_bytes: usage?.download ?? "0",
    token_enc: r.token_enc,
    xray_uuid: creds?.xray_uuid ?? null,
    trojan_password_enc: creds?.trojan ?? null,
    shadowsocks_password_enc: creds?.shadowsocks ?? null,
    wg_private_key_enc: creds?.wg_private ?? null,
    wg_preshared_key_enc: creds?.wg_psk ?? null,
    // Every secret is re-encrypted with a fresh IV when it changes, so the ciphertexts themselves
    // (hashed into the ETag with everything else) change with any rotation.
    creds_stamp: creds
      ? `${creds.rotated}|${creds.xray_uuid}|${creds.trojan}|${creds.shadowsocks}|${creds.wg_private}|${creds.wg_psk}`
      : null,
    pool_id: ip?.pool_id ?? null,
    ip_offset: ip?.offset ?? null,
    node_ids: r.node_ids,
    tenant_active: r.tenant_active === true,
    generation: r.generation,
  };
}

export async function headsByTokenHash(db: DbOrTx, hashes: readonly string[]): Promise<HeadRow[]> {
  if (hashes.length === 0) return [];
  const rows = await queryRows<HeadRaw>(
    db,
    sql`${headSelect} WHERE s.token_hash = ANY(${sql.param([...hashes])}::text[])`,
  );
  return rows.map(toHead);
}

/**
 * What a request needs before it knows whether it can answer 304 or from cache: the figures the
 * headers carry, and `stamp`, a digest of every other per-subscription input of the document (user,
 * subscription revision, credentials, address, assignments) plus the tenant's config generation.
 * Nine short columns and no secrets: the full head (above) is read only when a document is rendered.
 */
export interface LightHead {
  token_hash: string;
  subscription_id: string;
  state: string;
  quota_bytes: string | null;
  expires_ms: string | null;
  /** "used:upload:download", or null before the first usage row. */
  usage: string | null;
  tenant_active: boolean | null;
  stamp: string;
}

// Credentials enter the stamp through the first characters of each ciphertext: "v1:" and the random
// IV, which is new whenever the secret is re-encrypted, so a rotation changes the stamp without the
// secrets leaving the database.
const lightSelect = sql`
  SELECT s.token_hash, s.id AS subscription_id, s.state, s.quota_bytes::text AS quota_bytes,
    (extract(epoch FROM s.expires_at) * 1000)::bigint::text AS expires_ms,
    (SELECT us.used_bytes || ':' || us.upload_bytes || ':' || us.download_bytes
       FROM subscription_usage us WHERE us.subscription_id = s.id) AS usage,
    (SELECT t.status = 'active' FROM tenants t WHERE t.id = s.tenant_id) AS tenant_active,
    md5(concat_ws('|', s.revision, s.updated_at, s.engines, s.user_id,
      (SELECT concat_ws('|', u.username, u.engines, u.updated_at) FROM users u WHERE u.id = s.user_id),
      (SELECT concat_ws('|', c.xray_uuid, c.wg_public_key, c.rotated_at, left(c.trojan_password_enc, 24),
                        left(c.shadowsocks_password_enc, 24), left(c.wg_private_key_enc, 24),
                        left(c.wg_preshared_key_enc, 24))
         FROM credentials c WHERE c.user_id = s.user_id),
      (SELECT ia.pool_id || ':' || ia."offset" FROM ip_allocations ia WHERE ia.user_id = s.user_id),
      (SELECT string_agg(na.node_id, ',' ORDER BY na.node_id) FROM node_assignments na
        WHERE na.subscription_id = s.id),
      coalesce((SELECT g.generation FROM sub_feed_generations g WHERE g.tenant_id = s.tenant_id), 0))) AS stamp
  FROM subscriptions s`;

export async function lightHeadsByTokenHash(db: DbOrTx, hashes: readonly string[]): Promise<LightHead[]> {
  if (hashes.length === 0) return [];
  return queryRows<LightHead>(
    db,
    sql`${lightSelect} WHERE s.token_hash = ANY(${sql.param([...hashes])}::text[])`,
  );
}

/** The same head for an admin's lookup by user id, limited to tenants the caller may see. */
export async function headByUserId(db: DbOrTx, userId: string, tenantFilter: SQL): Promise<HeadRow | null> {
  const rows = await queryRows<HeadRaw>(
    db,
    sql`${headSelect} WHERE s.user_id = ${userId} AND ${tenantFilter}`,
  );
  return rows[0] ? toHead(rows[0]) : null;
}

export interface SnapshotRow {
  generation: string;
  tenant: { name: string; status: string; settings: Record<string, unknown> | null } | null;
  nodes: FeedNodeRow[] | string;
  templates: Array<{ kind: string; body: string }> | string;
  pools: PoolRow[] | string;
}

/**
 * Everything tenant-wide in ONE statement, so the generation it carries describes exactly the rows
 * returned with it (a change committing in between lands in the next generation, never half in this).
 */
export async function tenantSnapshot(db: DbOrTx, tenantId: string): Promise<SnapshotRow> {
  const rows = await queryRows<SnapshotRow>(
    db,
    sql`SELECT
      coalesce((SELECT generation FROM sub_feed_generations WHERE tenant_id = ${tenantId}), 0)::text AS generation,
      (SELECT json_build_object('name', name, 'status', status, 'settings', settings)
         FROM tenants WHERE id = ${tenantId}) AS tenant,
      coalesce((SELECT json_agg(json_build_object(
                  'id', n.id, 'name', n.name, 'address', n.address, 'core', n.core, 'engines', n.engines,
                  'status', n.status, 'inbounds', n.inbounds, 'wireguard', n.wireguard,
                  'wireguard_interfaces', h.wireguard_interfaces) ORDER BY n.created_at, n.id)
                FROM nodes n LEFT JOIN node_health h ON h.node_id = n.id
                WHERE n.tenant_id = ${tenantId} AND n.status <> 'revoked'), '[]'::json) AS nodes,
      coalesce((SELECT json_agg(json_build_object('kind', kind, 'body', body))
                FROM config_templates WHERE tenant_id = ${tenantId}), '[]'::json) AS templates,
      coalesce((SELECT json_agg(json_build_object('id', id, 'cidr_v4', cidr_v4, 'cidr_v6', cidr_v6))
                FROM ip_pools), '[]'::json) AS pools`,
  );
  return rows[0]!;
}
