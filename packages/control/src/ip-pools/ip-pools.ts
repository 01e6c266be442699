import { AppError, ConfigError, type Logger } from "@vpnpanel/common";
import { type DbOrTx, queryRows } from "@vpnpanel/db";
import { addressesAt, type DualStackPool, unwrap, validatePoolDefinition } from "@vpnpanel/domain";
import { sql } from "drizzle-orm";
import { textArray, toNumber } from "../shared/sql-values";

// WireGuard client addresses. One integer offset per user names its IPv4 (and IPv6) address, unique
// per pool by the primary key of ip_allocations. Allocation, race-free under concurrency:
//   1. reuse released offsets: DELETE from ip_free … FOR UPDATE SKIP LOCKED (concurrent creators take
//      different rows instead of queueing on the same one);
//   2. otherwise take fresh ones: UPDATE ip_pools SET next_offset = next_offset + n … RETURNING — one
//      atomic bump for a whole bulk batch, refused when it would pass the pool's capacity.
// Both happen in the creating transaction, so a rollback gives the offsets back. Deleting a user
// frees its offset (trigger ip_allocations_release).

export const DEFAULT_POOL_ID = "default";

export interface PoolSettings {
  ipv4: string;
  ipv6?: string | undefined;
  reservedHosts: number;
}

export interface PoolInfo {
  id: string;
  pool: DualStackPool;
}

export function createIpPools(defaults: PoolSettings, log: Logger) {
  // Validated at start-up: a bad WG_POOL_V4 / WG_POOL_V6 is a configuration error.
  const checked = validatePoolDefinition({
    ipv4: defaults.ipv4,
    ipv6: defaults.ipv6 ?? null,
    reserved_hosts: defaults.reservedHosts,
  });
  if (!checked.ok) {
    const envName = { ipv4: "WG_POOL_V4", ipv6: "WG_POOL_V6", reserved_hosts: "WG_POOL_RESERVED_HOSTS" };
    throw new ConfigError(
      checked.issues.map((i) => `${envName[i.field as keyof typeof envName] ?? i.field}: ${i.message}`),
    );
  }
  const configured = checked.value;
  const cache = new Map<string, DualStackPool>();

  async function ensureDefault(tx: DbOrTx): Promise<void> {
    await tx.execute(sql`
      INSERT INTO ip_pools (id, name, cidr_v4, cidr_v6)
      VALUES (${DEFAULT_POOL_ID}, 'default', ${defaults.ipv4}, ${defaults.ipv6 ?? null}::text)
      ON CONFLICT (id) DO NOTHING`);
  }

  async function load(tx: DbOrTx, poolId: string): Promise<DualStackPool> {
    const hit = cache.get(poolId);
    if (hit) return hit;
    if (poolId === DEFAULT_POOL_ID) await ensureDefault(tx);
    const [row] = await queryRows<{ cidr_v4: string; cidr_v6: string | null; next_offset: unknown }>(
      tx,
      sql`SELECT cidr_v4, cidr_v6, next_offset FROM ip_pools WHERE id = ${poolId}`,
    );
    if (!row) throw new AppError("not_found", `address pool ${poolId} not found`);
    if (
      poolId === DEFAULT_POOL_ID &&
      (row.cidr_v4 !== defaults.ipv4 || (row.cidr_v6 ?? undefined) !== defaults.ipv6)
    ) {
      // Addresses already handed out are offsets into the stored blocks; silently switching blocks
      // would renumber every client. The stored pool stays authoritative.
      log.warn(
        { stored: { v4: row.cidr_v4, v6: row.cidr_v6 }, configured: defaults },
        "WG_POOL_V4/WG_POOL_V6 differ from the stored default pool; keeping the stored blocks",
      );
    }
    const pool = unwrap(
      validatePoolDefinition({
        ipv4: row.cidr_v4,
        ipv6: row.cidr_v6,
        reserved_hosts: defaults.reservedHosts,
      }),
    );
    cache.set(poolId, pool);
    return pool;
  }

  return {
    configured,

    pool: load,

    /** Allocates one offset per user (in order) inside the caller's transaction. */
    async allocate(tx: DbOrTx, poolId: string, userIds: readonly string[]): Promise<number[]> {
      if (userIds.length === 0) return [];
      const pool = await load(tx, poolId);
      const reused = await queryRows<{ offset: unknown }>(
        tx,
        sql`DELETE FROM ip_free f USING (
              SELECT pool_id, "offset" FROM ip_free WHERE pool_id = ${poolId}
              ORDER BY "offset" LIMIT ${userIds.length} FOR UPDATE SKIP LOCKED) p
            WHERE f.pool_id = p.pool_id AND f."offset" = p."offset"
            RETURNING f."offset"`,
      );
      const offsets = reused.map((r) => toNumber(r.offset)!).sort((a, b) => a - b);
      const missing = userIds.length - offsets.length;
      if (missing > 0) {
        const bump = () =>
          queryRows<{ first: unknown }>(
            tx,
            sql`UPDATE ip_pools SET next_offset = next_offset + ${missing}::bigint
                WHERE id = ${poolId} AND next_offset + ${missing}::bigint <= ${pool.capacity.toString()}::bigint
                RETURNING next_offset - ${missing}::bigint AS first`,
          );
        let [bumped] = await bump();
        if (!bumped && poolId === DEFAULT_POOL_ID) {
          // The pool row may have been inserted by a concurrent first creation that has not committed
          // yet (an UPDATE does not wait for an uncommitted INSERT); the upsert waits for it.
          await ensureDefault(tx);
          [bumped] = await bump();
        }
        if (!bumped) {
          throw new AppError(
            "conflict",
            `the WireGuard address pool "${poolId}" is exhausted (${pool.capacity} addresses; ${missing} more needed): delete users or configure a larger pool`,
            { field: "wireguard_pool" },
          );
        }
        const first = toNumber(bumped.first)!;
        for (let i = 0; i < missing; i++) offsets.push(first + i);
      }
      await tx.execute(sql`
        INSERT INTO ip_allocations (pool_id, "offset", user_id)
        SELECT ${poolId}, o, u
        FROM unnest(${sql.param(offsets)}::bigint[], ${textArray(userIds)}) AS t(o, u)`);
      return offsets;
    },

    /** The addresses at an offset (with prefix lengths, as WireGuard configs want them). */
    async addresses(db: DbOrTx, poolId: string, offset: number) {
      const a = addressesAt(await load(db, poolId), offset);
      return { ipv4: `${a.ipv4}/32`, ipv6: a.ipv6 ? `${a.ipv6}/128` : null };
    },
  };
}

export type IpPools = ReturnType<typeof createIpPools>;
