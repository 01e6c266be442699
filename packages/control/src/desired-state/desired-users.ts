import type { SecretBox } from "@vpnpanel/common";
import { type Db, type DbOrTx, queryRows } from "@vpnpanel/db";
import { addressAt, createPool } from "@vpnpanel/domain";
import { type SQL, sql } from "drizzle-orm";
import type { NodeInbound, WireguardSettings } from "../nodes/inbounds";
import { renderXrayInbounds } from "../nodes/inbounds";
import { toBigInt, toDate } from "../shared/sql-values";

// Reading desired state for the node protocol, as plain records (the collector maps them to proto).
// Content is always rendered from the current database state: a snapshot, a diff or a command tells
// the agent what is true now, so re-sending any of them is harmless and a change that lands while
// a snapshot streams is simply delivered again by the next diff.

export type EngineName = "xray" | "wireguard";

export interface DesiredUserRecord {
  /** The subscription id: the cores' user key and UsageSample.user_id. */
  userId: string;
  email: string;
  engines: EngineName[];
  suspended: boolean;
  xray: { uuid: string; trojanPassword: string; shadowsocksPassword: string; vlessFlow: string } | null;
  wireguard: { publicKey: string; presharedKey: string; allowedIps: string[] } | null;
  /** remainingBytes -1 = unlimited. */
  lease: { remainingBytes: bigint; expiresAt: Date | null };
}

export interface NodeConfigRecord {
  xrayInboundsJson: string;
  wireguardInterfaces: Array<{ name: string; listenPort: number; addresses: string[]; mtu: number }>;
}

export interface NodeRevision {
  revision: bigint;
  configRevision: bigint;
  floorRevision: bigint;
}

export interface ChangedSet {
  subscriptionIds: string[];
  config: boolean;
  /** The last revision covered. */
  toRevision: bigint;
}

/** The context a credential secret is encrypted under (SecretBox AAD): column and owning user. */
export const credentialContext = (column: string, userId: string) => `credentials.${column}:${userId}`;

interface MemberRow {
  subscription_id: string;
  suspended: boolean;
  engines: string[];
  quota_bytes: unknown;
  expires_at: unknown;
  used_bytes: unknown;
  user_id: string;
  xray_uuid: string;
  trojan_password_enc: string;
  shadowsocks_password_enc: string;
  wg_public_key: string;
  wg_preshared_key_enc: string;
  ip_offset: unknown;
  cidr_v4: string | null;
  cidr_v6: string | null;
}

const memberColumns = sql`m.subscription_id, m.suspended, m.engines,
  s.quota_bytes::text AS quota_bytes, s.expires_at, coalesce(su.used_bytes, 0)::text AS used_bytes,
  c.user_id, c.xray_uuid::text AS xray_uuid, c.trojan_password_enc, c.shadowsocks_password_enc,
  c.wg_public_key, c.wg_preshared_key_enc, ia."offset"::text AS ip_offset, p.cidr_v4, p.cidr_v6`;

const memberJoins = sql`FROM node_members m
  JOIN subscriptions s ON s.id = m.subscription_id
  JOIN credentials c ON c.user_id = s.user_id
  LEFT JOIN subscription_usage su ON su.subscription_id = m.subscription_id
  LEFT JOIN ip_allocations ia ON ia.user_id = s.user_id
  LEFT JOIN ip_pools p ON p.id = ia.pool_id`;

export function createDesiredStateReader(deps: { db: Db; box: SecretBox; wgReservedHosts?: number }) {
  const { db, box } = deps;
  const reserved = deps.wgReservedHosts ?? 1;
  const pools = new Map<string, ReturnType<typeof createPool>>();
  const pool = (cidr: string) => {
    let p = pools.get(cidr);
    if (!p) {
      p = createPool(cidr, reserved);
      pools.set(cidr, p);
    }
    return p;
  };

  function toRecord(r: MemberRow, vlessFlow: string): DesiredUserRecord {
    const engines = r.engines.filter((e): e is EngineName => e === "xray" || e === "wireguard");
    const quota = toBigInt(r.quota_bytes);
    const used = toBigInt(r.used_bytes) ?? 0n;
    const remaining = quota === null ? -1n : quota > used ? quota - used : 0n;
    const allowedIps: string[] = [];
    const offset = toBigInt(r.ip_offset);
    if (offset !== null && r.cidr_v4) {
      allowedIps.push(`${addressAt(pool(r.cidr_v4), offset)}/32`);
      if (r.cidr_v6) allowedIps.push(`${addressAt(pool(r.cidr_v6), offset)}/128`);
    }
    return {
      userId: r.subscription_id,
      email: r.subscription_id,
      engines,
      suspended: r.suspended,
      xray: engines.includes("xray")
        ? {
            uuid: r.xray_uuid,
            trojanPassword: box.decrypt(
              r.trojan_password_enc,
              credentialContext("trojan_password", r.user_id),
            ),
            shadowsocksPassword: box.decrypt(
              r.shadowsocks_password_enc,
              credentialContext("shadowsocks_password", r.user_id),
            ),
            vlessFlow,
          }
        : null,
      wireguard: engines.includes("wireguard")
        ? {
            publicKey: r.wg_public_key,
            presharedKey: box.decrypt(
              r.wg_preshared_key_enc,
              credentialContext("wg_preshared_key", r.user_id),
            ),
            allowedIps,
          }
        : null,
      lease: { remainingBytes: remaining, expiresAt: toDate(r.expires_at) },
    };
  }

  async function flowOf(nodeId: string): Promise<string> {
    const rows = await queryRows<{ inbounds: NodeInbound[] | string }>(
      db,
      sql`SELECT inbounds FROM nodes WHERE id = ${nodeId}`,
    );
    const raw = rows[0]?.inbounds;
    const inbounds: NodeInbound[] = typeof raw === "string" ? JSON.parse(raw) : (raw ?? []);
    return inbounds.find((i) => i.protocol === "vless" && i.flow)?.flow ?? "";
  }

  async function members(where: SQL, limit?: number): Promise<MemberRow[]> {
    return queryRows<MemberRow>(
      db,
      sql`SELECT ${memberColumns} ${memberJoins} WHERE ${where} ORDER BY m.subscription_id
          ${limit ? sql`LIMIT ${limit}` : sql``}`,
    );
  }

  /** Fresh leases of these members (no revision change). */
  async function leases(
    nodeId: string,
    subscriptionIds: string[],
  ): Promise<Array<{ userId: string; lease: DesiredUserRecord["lease"] }>> {
    if (subscriptionIds.length === 0) return [];
    const rows = await queryRows<{
      subscription_id: string;
      quota_bytes: unknown;
      used_bytes: unknown;
      expires_at: unknown;
    }>(
      db,
      sql`SELECT m.subscription_id, s.quota_bytes::text AS quota_bytes, s.expires_at,
                 coalesce(su.used_bytes, 0)::text AS used_bytes
          FROM node_members m JOIN subscriptions s ON s.id = m.subscription_id
          LEFT JOIN subscription_usage su ON su.subscription_id = m.subscription_id
          WHERE m.node_id = ${nodeId} AND NOT m.suspended
            AND m.subscription_id = ANY(${sql.param(subscriptionIds)}::text[])`,
    );
    return rows.map((r) => {
      const quota = toBigInt(r.quota_bytes);
      const used = toBigInt(r.used_bytes) ?? 0n;
      return {
        userId: r.subscription_id,
        lease: {
          remainingBytes: quota === null ? -1n : quota > used ? quota - used : 0n,
          expiresAt: toDate(r.expires_at),
        },
      };
    });
  }

  return {
    async revision(nodeId: string, tx: DbOrTx = db): Promise<NodeRevision | null> {
      const rows = await queryRows<{ revision: unknown; config_revision: unknown; floor_revision: unknown }>(
        tx,
        sql`SELECT revision::text AS revision, config_revision::text AS config_revision,
                   floor_revision::text AS floor_revision FROM node_revisions WHERE node_id = ${nodeId}`,
      );
      const r = rows[0];
      if (!r) return null;
      return {
        revision: toBigInt(r.revision) ?? 1n,
        configRevision: toBigInt(r.config_revision) ?? 1n,
        floorRevision: toBigInt(r.floor_revision) ?? 1n,
      };
    },

    async revisions(nodeIds: string[]): Promise<Map<string, bigint>> {
      if (nodeIds.length === 0) return new Map();
      const rows = await queryRows<{ node_id: string; revision: unknown }>(
        db,
        sql`SELECT node_id, revision::text AS revision FROM node_revisions
            WHERE node_id = ANY(${sql.param(nodeIds)}::text[])`,
      );
      return new Map(rows.map((r) => [r.node_id, toBigInt(r.revision) ?? 1n]));
    },

    async nodeConfig(nodeId: string): Promise<NodeConfigRecord> {
      const rows = await queryRows<{
        engines: string[];
        inbounds: NodeInbound[] | string;
        wireguard: WireguardSettings | string | null;
      }>(db, sql`SELECT engines, inbounds, wireguard FROM nodes WHERE id = ${nodeId}`);
      const row = rows[0];
      if (!row) return { xrayInboundsJson: "", wireguardInterfaces: [] };
      const inbounds: NodeInbound[] =
        typeof row.inbounds === "string" ? JSON.parse(row.inbounds) : row.inbounds;
      const wg: WireguardSettings | null =
        typeof row.wireguard === "string" ? JSON.parse(row.wireguard) : row.wireguard;
      return {
        xrayInboundsJson: row.engines.includes("xray") ? renderXrayInbounds(box, nodeId, inbounds) : "",
        wireguardInterfaces:
          row.engines.includes("wireguard") && wg
            ? [
                {
                  name: wg.interface ?? "wg0",
                  listenPort: wg.listenPort,
                  addresses: [...wg.addresses],
                  mtu: wg.mtu ?? 0,
                },
              ]
            : [],
      };
    },

    /** One page of the node's members in subscription id order (a snapshot streams these). */
    async snapshotPage(nodeId: string, after: string | null, limit: number): Promise<DesiredUserRecord[]> {
      const flow = await flowOf(nodeId);
      const rows = await members(
        after === null
          ? sql`m.node_id = ${nodeId}`
          : sql`m.node_id = ${nodeId} AND m.subscription_id > ${after}`,
        limit,
      );
      return rows.map((r) => toRecord(r, flow));
    },

    /** The current entries of these subscriptions on the node; a missing one must be removed. */
    async users(nodeId: string, subscriptionIds: string[]): Promise<Map<string, DesiredUserRecord>> {
      if (subscriptionIds.length === 0) return new Map();
      const flow = await flowOf(nodeId);
      const rows = await members(
        sql`m.node_id = ${nodeId} AND m.subscription_id = ANY(${sql.param(subscriptionIds)}::text[])`,
      );
      return new Map(rows.map((r) => [r.subscription_id, toRecord(r, flow)]));
    },

    /** Change rows after `after`, in revision order (the live push reads these). */
    async changesAfter(
      nodeId: string,
      after: bigint,
      limit: number,
    ): Promise<Array<{ revision: bigint; subscriptionId: string | null }>> {
      const rows = await queryRows<{ revision: unknown; subscription_id: string | null }>(
        db,
        sql`SELECT revision::text AS revision, subscription_id FROM node_changes
            WHERE node_id = ${nodeId} AND revision > ${after.toString()}::bigint
            ORDER BY revision LIMIT ${limit}`,
      );
      return rows.map((r) => ({ revision: toBigInt(r.revision) ?? 0n, subscriptionId: r.subscription_id }));
    },

    /** The subscriptions changed in (from, to], or null when there are more than `max`. */
    async changedBetween(nodeId: string, from: bigint, to: bigint, max: number): Promise<ChangedSet | null> {
      const rows = await queryRows<{ subscription_id: string | null }>(
        db,
        sql`SELECT DISTINCT subscription_id FROM node_changes
            WHERE node_id = ${nodeId} AND revision > ${from.toString()}::bigint
              AND revision <= ${to.toString()}::bigint
            LIMIT ${max + 2}`,
      );
      const ids = rows.flatMap((r) => (r.subscription_id === null ? [] : [r.subscription_id]));
      if (ids.length > max) return null;
      return {
        subscriptionIds: ids.sort(),
        config: rows.some((r) => r.subscription_id === null),
        toRevision: to,
      };
    },

    /** The highest usage seq stored for the node (leases are computed from usage up to it). */
    async lastStoredSeq(nodeId: string): Promise<bigint> {
      const rows = await queryRows<{ seq: unknown }>(
        db,
        sql`SELECT greatest(
              coalesce((SELECT max(seq) FROM usage_batches WHERE node_id = ${nodeId}), 0),
              coalesce((SELECT floor_seq FROM node_usage_state WHERE node_id = ${nodeId}), 0))::text AS seq`,
      );
      return toBigInt(rows[0]?.seq) ?? 0n;
    },

    leases,

    /** Members with a byte quota whose usage moved since `since` (the periodic lease refresh). */
    async leasesUsedSince(nodeId: string, since: Date, limit: number) {
      const rows = await queryRows<{ subscription_id: string }>(
        db,
        sql`SELECT m.subscription_id FROM node_members m
            JOIN subscriptions s ON s.id = m.subscription_id AND s.quota_bytes IS NOT NULL
            JOIN subscription_usage su ON su.subscription_id = m.subscription_id
            WHERE m.node_id = ${nodeId} AND NOT m.suspended AND su.last_used_at > ${since.toISOString()}::timestamptz
            LIMIT ${limit}`,
      );
      return leases(
        nodeId,
        rows.map((r) => r.subscription_id),
      );
    },
  };
}

export type DesiredStateReader = ReturnType<typeof createDesiredStateReader>;
