import { createHash } from "node:crypto";
import { newId } from "@vpnpanel/common";
import { subscriptionTokenContext } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import {
  newPassword,
  newPresharedKey,
  newShadowsocks2022Key,
  newSubscriptionToken,
  newWireGuardKeyPair,
  newXrayUuid,
} from "@vpnpanel/domain";
import type { InboundDefinition } from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import type { TestApi } from "../../../test/support/api";

// Seeds subscribers and nodes for the subscription-feed tests with plain SQL, shaped exactly as the
// lifecycle and node services store them (credential secrets under their SecretBox contexts, token
// hashed + encrypted, one address offset per user), so the feed is tested against real rows.

export const GIB = 1024 ** 3;
export const REALITY_PUBLIC_KEY = "2D-qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8";
export const SS_SERVER_KEY = "4F7/RmkNs+1x9K1wDv89/daMZD/eR9SxlctKbynhS8E=";

const credentialContext = (column: string, userId: string) => `credentials.${column}:${userId}`;

/** Xray-core node: REALITY + vision, ws+TLS behind two CDN hosts, gRPC, Shadowsocks 2022. */
export function xrayInbounds(): Array<InboundDefinition & { server?: Record<string, unknown> }> {
  return [
    {
      tag: "vless-reality",
      protocol: "vless",
      port: 443,
      flow: "xtls-rprx-vision",
      transport: { type: "tcp" },
      security: {
        type: "reality",
        fingerprint: "chrome",
        reality: { publicKey: REALITY_PUBLIC_KEY, shortId: "0123abcd", serverName: "www.example.org" },
      },
      server: { reality: { dest: "www.example.org:443", privateKeyEnc: "v1:server-only-secret" } },
    },
    {
      tag: "vmess-ws",
      protocol: "vmess",
      port: 8080,
      transport: { type: "ws", path: "/ws", host: "cdn.example.com" },
      security: { type: "tls", sni: "cdn.example.com", alpn: ["http/1.1"], fingerprint: "chrome" },
      hosts: [
        { address: "cdn1.example.com", port: 443, remark: "{NODE} CDN-1 {DATA_LEFT}" },
        { address: "cdn2.example.com", port: 443, remark: "{NODE} CDN-2" },
      ],
      server: { tls: { certificateFile: "/etc/ssl/x.crt", keyFile: "/etc/ssl/x.key" } },
    },
    {
      tag: "trojan-grpc",
      protocol: "trojan",
      port: 2083,
      transport: { type: "grpc", serviceName: "tg" },
      security: { type: "tls", sni: "de.example.com" },
      server: { tls: { certificateFile: "/etc/ssl/x.crt", keyFile: "/etc/ssl/x.key" } },
    },
    {
      tag: "ss-2022",
      protocol: "shadowsocks",
      port: 8388,
      transport: { type: "tcp" },
      security: { type: "none" },
      shadowsocks: { method: "2022-blake3-aes-256-gcm", serverKey: SS_SERVER_KEY },
    },
  ];
}

/** v2ray 4.x node: only what that core can do (no REALITY, flow, gRPC or uTLS). */
export function v2rayInbounds(): InboundDefinition[] {
  return [
    {
      tag: "vmess-ws-tls",
      protocol: "vmess",
      port: 443,
      transport: { type: "ws", path: "/v", host: "legacy.example.com" },
      security: { type: "tls", sni: "legacy.example.com" },
    },
    {
      tag: "vless-tcp-tls",
      protocol: "vless",
      port: 8443,
      transport: { type: "tcp" },
      security: { type: "tls", sni: "legacy.example.com" },
    },
    {
      tag: "ss-aead",
      protocol: "shadowsocks",
      port: 8389,
      transport: { type: "tcp" },
      security: { type: "none" },
      shadowsocks: { method: "aes-256-gcm" },
    },
  ];
}

export interface NodeSeed {
  name: string;
  core?: "xray" | "v2ray";
  address?: string;
  engines?: string[];
  inbounds?: unknown[];
  wireguard?: Record<string, unknown> | null;
  /** The public key the agent "reported" in node_health, as the collector stores it (null: never connected). */
  wgPublicKey?: string | null;
}

export async function seedNode(t: TestApi, tenantId: string, seed: NodeSeed): Promise<string> {
  const id = newId("node");
  const db = t.cp.database.db;
  await db.execute(sql`
    INSERT INTO nodes (id, tenant_id, name, address, core, engines, inbounds, wireguard, status)
    VALUES (${id}, ${tenantId}, ${seed.name}, ${seed.address ?? `${seed.name.toLowerCase()}.example.com`},
            ${seed.core ?? "xray"}, ${sql.param(seed.engines ?? ["xray", "wireguard"])}::text[],
            ${JSON.stringify(seed.inbounds ?? [])}::jsonb,
            ${seed.wireguard === undefined || seed.wireguard === null ? null : JSON.stringify(seed.wireguard)}::jsonb,
            'active')`);
  const key = seed.wgPublicKey === undefined ? newWireGuardKeyPair().publicKey : seed.wgPublicKey;
  if (key) {
    const port = Number(seed.wireguard?.listenPort ?? 51820);
    await db.execute(sql`
      INSERT INTO node_health (node_id, connected, wireguard_interfaces)
      VALUES (${id}, true, ${JSON.stringify([{ name: "wg0", public_key: key, listen_port: port, peer_count: 0 }])}::jsonb)`);
  }
  return id;
}

export interface UserSeed {
  username: string;
  state?: "active" | "on_hold" | "limited" | "expired" | "disabled";
  quotaBytes?: number | null;
  usedBytes?: number;
  expiresAt?: Date | null;
  engines?: string[];
  /** users.engines override; null = none. */
  userEngines?: string[] | null;
  nodeIds: string[];
  /** Address offset in the pool; default the next free one. */
  ipOffset?: number;
}

export interface SeededUser {
  userId: string;
  subscriptionId: string;
  token: string;
  wgPublicKey: string;
}

let nextOffset = 0;

async function ensurePool(t: TestApi): Promise<string> {
  const db = t.cp.database.db;
  const rows = await queryRows<{ id: string }>(db, sql`SELECT id FROM ip_pools WHERE name = 'sub-tests'`);
  if (rows[0]) return rows[0].id;
  const id = "pool_subtests";
  await db.execute(sql`INSERT INTO ip_pools (id, name, cidr_v4, cidr_v6) VALUES (${id}, 'sub-tests', '10.80.0.0/12', 'fd80::/64')
                       ON CONFLICT DO NOTHING`);
  return id;
}

export async function seedUser(t: TestApi, tenantId: string, seed: UserSeed): Promise<SeededUser> {
  const db = t.cp.database.db;
  const box = t.cp.box;
  const userId = newId("usr");
  const subscriptionId = newId("sub");
  const token = newSubscriptionToken();
  const tokenHash = createHash("sha256").update(token).digest("hex");
  const wg = newWireGuardKeyPair();
  const poolId = await ensurePool(t);
  const offset = seed.ipOffset ?? 1000 + nextOffset++;
  const used = seed.usedBytes ?? 0;
  await db.transaction(async (tx) => {
    await tx.execute(sql`
      INSERT INTO users (id, tenant_id, username, engines)
      VALUES (${userId}, ${tenantId}, ${seed.username},
              ${seed.userEngines ? sql`${sql.param(seed.userEngines)}::text[]` : sql`NULL::text[]`})`);
    await tx.execute(sql`
      INSERT INTO subscriptions (id, tenant_id, user_id, state, quota_bytes, engines, started_at, expires_at,
                                 token_hash, token_enc)
      VALUES (${subscriptionId}, ${tenantId}, ${userId}, ${seed.state ?? "active"},
              ${seed.quotaBytes === null ? null : String(seed.quotaBytes ?? 100 * GIB)}::bigint,
              ${sql.param(seed.engines ?? ["xray", "wireguard"])}::text[], now(),
              ${seed.expiresAt === null ? null : (seed.expiresAt ?? new Date(Date.now() + 30 * 86_400_000)).toISOString()}::timestamptz,
              ${tokenHash}, ${box.encrypt(token, subscriptionTokenContext(subscriptionId))})`);
    await tx.execute(sql`
      INSERT INTO subscription_usage (subscription_id, used_bytes, upload_bytes, download_bytes, lifetime_bytes)
      VALUES (${subscriptionId}, ${String(used)}::bigint, ${String(Math.floor(used / 4))}::bigint,
              ${String(used - Math.floor(used / 4))}::bigint, ${String(used)}::bigint)`);
    await tx.execute(sql`
      INSERT INTO credentials (user_id, tenant_id, xray_uuid, trojan_password_enc, shadowsocks_password_enc,
                               wg_private_key_enc, wg_public_key, wg_preshared_key_enc)
      VALUES (${userId}, ${tenantId}, ${newXrayUuid()}::uuid,
              ${box.encrypt(newPassword(), credentialContext("trojan_password", userId))},
              ${box.encrypt(newShadowsocks2022Key("2022-blake3-aes-256-gcm"), credentialContext("shadowsocks_password", userId))},
              ${box.encrypt(wg.privateKey, credentialContext("wg_private_key", userId))}, ${wg.publicKey},
              ${box.encrypt(newPresharedKey(), credentialContext("wg_preshared_key", userId))})`);
    await tx.execute(
      sql`INSERT INTO ip_allocations (pool_id, "offset", user_id) VALUES (${poolId}, ${offset}, ${userId})`,
    );
    for (const nodeId of seed.nodeIds) {
      await tx.execute(sql`
        INSERT INTO node_assignments (subscription_id, node_id, tenant_id) VALUES (${subscriptionId}, ${nodeId}, ${tenantId})`);
    }
  });
  return { userId, subscriptionId, token, wgPublicKey: wg.publicKey };
}

/** What the lifecycle does on "rotate credentials": new secrets, rotated_at moves, revision bumps. */
export async function rotateCredentials(t: TestApi, user: SeededUser): Promise<void> {
  const box = t.cp.box;
  const wg = newWireGuardKeyPair();
  await t.cp.database.db.execute(sql`
    UPDATE credentials SET xray_uuid = ${newXrayUuid()}::uuid,
      trojan_password_enc = ${box.encrypt(newPassword(), credentialContext("trojan_password", user.userId))},
      wg_private_key_enc = ${box.encrypt(wg.privateKey, credentialContext("wg_private_key", user.userId))},
      wg_public_key = ${wg.publicKey}, rotated_at = now()
    WHERE user_id = ${user.userId}`);
}

/** A standard world for the feed: an Xray node with WireGuard, a v2ray node, and a few users. */
export async function seedFeedWorld(t: TestApi, tenantId: string) {
  const xrayNode = await seedNode(t, tenantId, {
    name: "Frankfurt",
    core: "xray",
    address: "de.example.com",
    inbounds: xrayInbounds(),
    wireguard: {
      listenPort: 51820,
      addresses: ["10.80.0.1/12", "fd80::1/64"],
      dns: ["1.1.1.1"],
      mtu: 1420,
      persistentKeepalive: 25,
      peersPerInterface: 4,
    },
  });
  const v2rayNode = await seedNode(t, tenantId, {
    name: "Legacy",
    core: "v2ray",
    address: "203.0.113.10",
    engines: ["xray"],
    inbounds: v2rayInbounds(),
  });
  const nodeIds = [xrayNode, v2rayNode];
  return { xrayNode, v2rayNode, nodeIds };
}
