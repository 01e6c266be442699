import { randomBytes, randomUUID } from "node:crypto";
import { newId, type SecretBox } from "@vpnpanel/common";
import { credentialContext } from "@vpnpanel/control";
import type { DbOrTx } from "@vpnpanel/db";
import { sql } from "drizzle-orm";

// Subscribers written straight into the tables (users, subscriptions, counters, credentials), so the
// node control plane is tested and benchmarked without depending on the lifecycle services. The
// rows are shaped exactly as the lifecycle writes them; secrets use the same encryption contexts.

export interface SeedOptions {
  tenantId: string;
  count: number;
  /** null = unlimited (default 100 GiB). */
  quotaBytes?: bigint | null;
  state?: "on_hold" | "active" | "limited" | "expired" | "disabled";
  engines?: Array<"xray" | "wireguard">;
  holdMode?: "none" | "first_connection" | "date";
  durationSeconds?: number | null;
  expiresAt?: Date | null;
  chunk?: number;
}

export interface Seeded {
  userId: string;
  subscriptionId: string;
}

export async function seedSubscribers(db: DbOrTx, box: SecretBox, o: SeedOptions): Promise<Seeded[]> {
  const out: Seeded[] = [];
  const chunk = o.chunk ?? 2000;
  const quota =
    o.quotaBytes === undefined
      ? (100n * 2n ** 30n).toString()
      : o.quotaBytes === null
        ? null
        : o.quotaBytes.toString();
  const engines = o.engines ?? ["xray", "wireguard"];
  for (let start = 0; start < o.count; start += chunk) {
    const n = Math.min(chunk, o.count - start);
    const rows = Array.from({ length: n }, () => {
      const userId = newId("usr");
      const subscriptionId = newId("sub");
      return {
        userId,
        subscriptionId,
        username: `u${userId.slice(-12)}`,
        tokenHash: randomBytes(16).toString("hex"),
        tokenEnc: box.encrypt(randomBytes(18).toString("base64url"), `subscriptions.token:${subscriptionId}`),
        uuid: randomUUID(),
        trojan: box.encrypt(
          randomBytes(12).toString("base64url"),
          credentialContext("trojan_password", userId),
        ),
        ss: box.encrypt(
          randomBytes(16).toString("base64"),
          credentialContext("shadowsocks_password", userId),
        ),
        wgPriv: box.encrypt(randomBytes(32).toString("base64"), credentialContext("wg_private_key", userId)),
        wgPub: randomBytes(32).toString("base64"),
        wgPsk: box.encrypt(randomBytes(32).toString("base64"), credentialContext("wg_preshared_key", userId)),
      };
    });
    const col = <K extends keyof (typeof rows)[number]>(k: K) => sql.param(rows.map((r) => r[k]));
    await db.execute(sql`
      WITH v AS (
        SELECT * FROM unnest(${col("userId")}::text[], ${col("subscriptionId")}::text[], ${col("username")}::text[],
                             ${col("tokenHash")}::text[], ${col("tokenEnc")}::text[], ${col("uuid")}::uuid[],
                             ${col("trojan")}::text[], ${col("ss")}::text[], ${col("wgPriv")}::text[],
                             ${col("wgPub")}::text[], ${col("wgPsk")}::text[])
          AS v(user_id, sub_id, username, token_hash, token_enc, uuid, trojan, ss, wg_priv, wg_pub, wg_psk)),
      u AS (INSERT INTO users (id, tenant_id, username) SELECT user_id, ${o.tenantId}, username FROM v),
      s AS (INSERT INTO subscriptions (id, tenant_id, user_id, state, quota_bytes, engines, hold_mode, duration_seconds,
                                       expires_at, started_at, token_hash, token_enc)
            SELECT sub_id, ${o.tenantId}, user_id, ${o.state ?? "active"}, ${quota}::bigint,
                   ${sql.param(engines)}::text[], ${o.holdMode ?? "none"}, ${o.durationSeconds ?? null}::bigint,
                   ${o.expiresAt ? o.expiresAt.toISOString() : null}::timestamptz,
                   CASE WHEN ${o.state ?? "active"} = 'on_hold' THEN NULL ELSE now() END,
                   token_hash, token_enc FROM v),
      su AS (INSERT INTO subscription_usage (subscription_id) SELECT sub_id FROM v)
      INSERT INTO credentials (user_id, tenant_id, xray_uuid, trojan_password_enc, shadowsocks_password_enc,
                               wg_private_key_enc, wg_public_key, wg_preshared_key_enc)
      SELECT user_id, ${o.tenantId}, uuid, trojan, ss, wg_priv, wg_pub, wg_psk FROM v`);
    for (const r of rows) out.push({ userId: r.userId, subscriptionId: r.subscriptionId });
  }
  return out;
}
