import { createHash } from "node:crypto";
import { type AddressPool, addressAt, createPool, familyBits, parseIp } from "@vpnpanel/domain";
import type {
  Core,
  Engine,
  InboundDefinition,
  RenderNode,
  SubscriberStatus,
  Usage,
  WireguardEndpoint,
} from "@vpnpanel/render";

// Pure mapping from database rows to the renderer's input model, and the ETag: everything here is a
// function of its arguments, so what decides a subscriber's document can be tested exhaustively.

/** The agent's default (AGENT_WG_PEERS_PER_INTERFACE); a node's wireguard.peersPerInterface overrides. */
export const DEFAULT_PEERS_PER_INTERFACE = 50_000;

export interface FeedNodeRow {
  id: string;
  name: string;
  address: string;
  core: string;
  engines: string[];
  status: string;
  inbounds: unknown;
  wireguard: unknown;
  /** node_health.wireguard_interfaces as the collector stored the agent's report. */
  wireguard_interfaces: unknown;
}

/** A node as every subscriber of the tenant sees it, before the per-subscriber WireGuard port. */
export interface FeedNode {
  id: string;
  name: string;
  core: Core;
  address: string;
  inbounds: InboundDefinition[];
  wireguard: FeedWireguard | null;
}

export interface FeedWireguard {
  host: string;
  /** Port clients dial for interface 0; interface k is basePort + k. */
  basePort: number;
  publicKey: string;
  /** The interface's IPv4 block: the agent places peers by their offset inside it. */
  placement: { network: bigint; prefix: number } | null;
  peersPerInterface: number;
  allowedIps?: string[];
  dns?: string[];
  mtu: number | null;
  persistentKeepalive: number | null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const int = (v: unknown): number | undefined => {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) ? n : undefined;
};
const strings = (v: unknown): string[] | undefined =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string" && x !== "") : undefined;
const json = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v);
/** Reads `snake_case` or `camelCase`, whichever the writer used. */
const field = (o: Record<string, unknown>, snake: string, camel: string) => o[camel] ?? o[snake];

/** The client-facing definition only: server-side settings (TLS files, REALITY keys) never leave here. */
function clientInbound(raw: unknown): InboundDefinition | null {
  if (!isObject(raw) || !str(raw.tag) || !str(raw.protocol)) return null;
  const { server: _server, ...def } = raw;
  return def as unknown as InboundDefinition;
}

/** Block of the first IPv4 interface address (host bits cleared), the pool the agent places peers in. */
export function placementBlockOf(addresses: readonly string[]): { network: bigint; prefix: number } | null {
  for (const text of addresses) {
    const [addr = "", len] = text.split("/");
    try {
      const ip = parseIp(addr);
      if (ip.family !== 4) continue;
      const prefix = len === undefined ? 32 : Number(len);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) continue;
      const host = BigInt(familyBits(4) - prefix);
      return { network: (ip.value >> host) << host, prefix };
    } catch {}
  }
  return null;
}

/** The public key the agent reported for interface 0 (all of a node's interfaces share one key). */
function reportedPublicKey(interfaces: unknown): string | undefined {
  const list = Array.isArray(interfaces) ? interfaces.filter(isObject) : [];
  const byIndex = (o: Record<string, unknown>) => Number(/(\d+)$/.exec(str(o.name) ?? "")?.[1] ?? 0);
  const sorted = [...list].sort((a, b) => byIndex(a) - byIndex(b));
  for (const i of sorted) {
    const key = str(field(i, "public_key", "publicKey"));
    if (key) return key;
  }
  return undefined;
}

function feedWireguard(row: FeedNodeRow, defaultPeersPerInterface: number): FeedWireguard | null {
  const w = json(row.wireguard);
  if (!isObject(w)) return null;
  const publicKey =
    str(field(w, "public_key", "publicKey")) ?? reportedPublicKey(json(row.wireguard_interfaces));
  // Until the agent has reported its key there is nothing a client could connect to.
  if (!publicKey) return null;
  const listenPort = int(field(w, "listen_port", "listenPort")) ?? 51820;
  const persistentKeepalive = int(field(w, "persistent_keepalive", "persistentKeepalive"));
  const allowedIps = strings(field(w, "allowed_ips", "allowedIps"));
  const dns = strings(w.dns);
  return {
    host: str(field(w, "endpoint_host", "endpointHost")) ?? row.address,
    basePort: int(field(w, "endpoint_port", "endpointPort")) ?? listenPort,
    publicKey,
    placement: placementBlockOf(strings(w.addresses) ?? []),
    peersPerInterface: int(field(w, "peers_per_interface", "peersPerInterface")) ?? defaultPeersPerInterface,
    ...(allowedIps?.length ? { allowedIps } : {}),
    ...(dns?.length ? { dns } : {}),
    mtu: int(w.mtu) ?? null,
    persistentKeepalive: persistentKeepalive ?? null,
  };
}

/** A stored node as the feed serves it; a revoked node serves nobody. */
export function feedNode(
  row: FeedNodeRow,
  defaultPeersPerInterface = DEFAULT_PEERS_PER_INTERFACE,
): FeedNode | null {
  if (row.status === "revoked") return null;
  const engines = row.engines ?? [];
  const inbounds = engines.includes("xray")
    ? (Array.isArray(json(row.inbounds)) ? (json(row.inbounds) as unknown[]) : [])
        .map(clientInbound)
        .filter((i): i is InboundDefinition => i !== null)
    : [];
  return {
    id: row.id,
    name: row.name,
    core: row.core === "v2ray" ? "v2ray" : "xray",
    address: row.address,
    inbounds,
    wireguard: engines.includes("wireguard") ? feedWireguard(row, defaultPeersPerInterface) : null,
  };
}

/**
 * The interface a peer lives on, exactly as the agent places it (apps/node-agent placement.ts):
 * floor((client IPv4 − interface network) / peersPerInterface); 0 without an address in that block.
 */
export function wireguardInterfaceIndex(wg: FeedWireguard, clientIpv4: string | null): number {
  const block = wg.placement;
  if (clientIpv4 === null || block === null || wg.peersPerInterface < 1) return 0;
  try {
    const ip = parseIp(clientIpv4.split("/")[0] ?? "");
    const host = BigInt(32 - block.prefix);
    if (ip.family !== 4 || (ip.value >> host) << host !== block.network) return 0;
    return Number((ip.value - block.network) / BigInt(wg.peersPerInterface));
  } catch {
    return 0;
  }
}

export function wireguardEndpoint(wg: FeedWireguard, clientIpv4: string | null): WireguardEndpoint {
  return {
    host: wg.host,
    port: wg.basePort + wireguardInterfaceIndex(wg, clientIpv4),
    publicKey: wg.publicKey,
    ...(wg.allowedIps ? { allowedIps: wg.allowedIps } : {}),
    ...(wg.dns ? { dns: wg.dns } : {}),
    mtu: wg.mtu,
    persistentKeepalive: wg.persistentKeepalive,
  };
}

/** The subscriber's nodes in the tenant's order, with their WireGuard port for this subscriber. */
export function renderNodesFor(
  nodes: readonly FeedNode[],
  assigned: ReadonlySet<string>,
  clientIpv4: string | null,
): RenderNode[] {
  const out: RenderNode[] = [];
  for (const n of nodes) {
    if (!assigned.has(n.id)) continue;
    out.push({
      id: n.id,
      name: n.name,
      core: n.core,
      address: n.address,
      inbounds: n.inbounds,
      wireguard: n.wireguard ? wireguardEndpoint(n.wireguard, clientIpv4) : null,
    });
  }
  return out;
}

export interface PoolRow {
  id: string;
  cidr_v4: string;
  cidr_v6: string | null;
}

export interface FeedPool {
  v4: AddressPool;
  v6: AddressPool | null;
}

export function feedPool(row: PoolRow, reservedHosts: number): FeedPool {
  return {
    v4: createPool(row.cidr_v4, reservedHosts),
    v6: row.cidr_v6 ? createPool(row.cidr_v6, reservedHosts) : null,
  };
}

/** Tunnel addresses of a client at `offset`: the same offset names both families (dual-stack pools). */
export function clientAddresses(pool: FeedPool | undefined, offset: bigint | null): string[] {
  if (!pool || offset === null) return [];
  try {
    const out = [`${addressAt(pool.v4, offset)}/32`];
    if (pool.v6) out.push(`${addressAt(pool.v6, offset)}/128`);
    return out;
  } catch {
    return [];
  }
}

/**
 * Engines the subscriber gets: the subscription's effective set, narrowed again by the user's
 * override (the lifecycle already intersects them; repeating it costs nothing and fails safe).
 */
export function subscriberEngines(
  subscription: readonly string[],
  userOverride: readonly string[] | null,
): Engine[] {
  return subscription.filter(
    (e): e is Engine =>
      (e === "xray" || e === "wireguard") && (userOverride === null || userOverride.includes(e)),
  );
}

/**
 * upload + download as clients read them from `subscription-userinfo`: their sum must be the bytes
 * that count against the quota in this period (`used_bytes`), or a client shows the wrong remainder.
 * The split follows the stored upload/download ratio.
 */
export function splitUsage(
  used: bigint,
  upload: bigint,
  download: bigint,
): { upload: number; download: number } {
  const both = upload + download;
  const up = both > 0n ? (used * upload) / both : 0n;
  return { upload: Number(up), download: Number(used - up) };
}

export function subscriberStatus(state: string, tenantActive: boolean): SubscriberStatus {
  if (!tenantActive) return "disabled";
  switch (state) {
    case "active":
    case "on_hold":
    case "limited":
    case "expired":
    case "disabled":
      return state;
    default:
      return "disabled";
  }
}

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const DAY_MS = 86_400_000;

/**
 * The usage a cached document may be stale by: 1 % of the quota (at least 64 MiB), 1 GiB when
 * unlimited. Within a bucket the document (remarks like {DATA_LEFT}, the HTML page) is served from
 * cache and revalidations answer 304; the `subscription-userinfo` header is always exact.
 */
export function usageBucket(usage: Usage): number {
  const used = usage.upload + usage.download;
  const size = usage.total === null ? GIB : Math.max(64 * MIB, Math.floor(usage.total / 100));
  return Math.floor(used / size);
}

/** Whole days left as the renderer counts them (rounded up; 0 once expired), or -1 for never. */
export function daysLeftKey(expireAt: Date | null, now: Date): number {
  if (expireAt === null) return -1;
  const ms = expireAt.getTime() - now.getTime();
  return ms <= 0 ? 0 : Math.ceil(ms / DAY_MS);
}

/** Everything that decides the bytes of one rendered document (see etagOf). */
export interface EtagInputs {
  subscriptionId: string;
  tokenHash: string;
  /** Digest of every other per-subscriber input and the tenant's config generation (see LightHead). */
  stamp: string;
  usage: Usage;
  status: SubscriberStatus;
  format: string;
  nodeId: string | null;
  /** Process-wide settings and the renderer version: a deploy that changes output changes ETags. */
  settingsStamp: string;
  now: Date;
}

/**
 * A strong ETag over the inputs rather than the output, so a revalidation is answered before any
 * rendering. Time enters only as the day count and the exhausted/expired flags the renderer uses.
 */
export function etagOf(i: EtagInputs): string {
  const exhausted = i.usage.total !== null && i.usage.upload + i.usage.download >= i.usage.total;
  const parts = [
    i.subscriptionId,
    i.tokenHash,
    i.stamp,
    i.status,
    i.usage.total ?? "-",
    i.usage.expireAt?.getTime() ?? "-",
    usageBucket(i.usage),
    exhausted ? "x" : "",
    daysLeftKey(i.usage.expireAt, i.now),
    i.format,
    i.nodeId ?? "",
    i.settingsStamp,
  ];
  return `"${createHash("sha256").update(parts.join("\u0000")).digest("base64url").slice(0, 27)}"`;
}

/** RFC 9110 If-None-Match: a list of entity tags (weak ones compare weakly) or "*". */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  for (const raw of header.split(",")) {
    const tag = raw.trim();
    if (tag === "*") return true;
    if ((tag.startsWith("W/") ? tag.slice(2) : tag) === etag) return true;
  }
  return false;
}
