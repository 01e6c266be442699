import type { SecretBox } from "@vpnpanel/common";
import type { Db } from "@vpnpanel/db";
import type { Credentials, Engine, RenderNode, Subscriber, Usage } from "@vpnpanel/render";
import { credentialContext } from "../desired-state/desired-users";
import { toBigInt, toDate } from "../shared/sql-values";
import { defaultTemplates } from "../templates/templates-service";
import {
  clientAddresses,
  type FeedNode,
  type FeedNodeRow,
  type FeedPool,
  feedNode,
  feedPool,
  type PoolRow,
  renderNodesFor,
  splitUsage,
  subscriberEngines,
  subscriberStatus,
} from "./feed-model";
import { type HeadRow, tenantSnapshot } from "./feed-queries";

// From a subscriber's full head and the tenant's snapshot to the renderer's input. The tenant part
// (nodes, templates, pools, settings) is read once per config generation and shared by every
// subscriber of the tenant; only the subscriber's own secrets are decrypted per render.

export interface TenantFeedSnapshot {
  generation: bigint;
  nodes: FeedNode[];
  templates: { remark: string; clash?: string; singbox?: string };
  pools: Map<string, FeedPool>;
  title?: string;
  supportUrl?: string;
}

/** A subscriber's render inputs, shared by the public feed and the admin views. */
export interface SubscriberView {
  head: HeadRow;
  snapshot: TenantFeedSnapshot;
  subscriber: Subscriber;
  /** Engines the user is allowed (subscription ∩ override); `subscriber.engines` drops WireGuard without an address. */
  allowedEngines: Engine[];
  nodes: RenderNode[];
}

export interface ViewSettings {
  profileTitle?: string | undefined;
  supportUrl?: string | undefined;
  wgReservedHosts: number;
  wgPeersPerInterface: number;
}

const parse = <T>(v: T | string): T => (typeof v === "string" ? (JSON.parse(v) as T) : v);

export function usageOf(h: HeadRow): Usage {
  const used = toBigInt(h.used_bytes) ?? 0n;
  const quota = toBigInt(h.quota_bytes);
  return {
    ...splitUsage(used, toBigInt(h.upload_bytes) ?? 0n, toBigInt(h.download_bytes) ?? 0n),
    total: quota === null ? null : Number(quota),
    expireAt: toDate(h.expires_at),
  };
}

export function createSubscriberViews(deps: { db: Db; box: SecretBox; settings: ViewSettings }) {
  const { db, box, settings } = deps;
  // One snapshot per tenant, replaced when a head shows a newer generation. The promise is stored so
  // concurrent misses of one tenant share a single read.
  const snapshots = new Map<string, { generation: bigint; promise: Promise<TenantFeedSnapshot> }>();

  async function readSnapshot(tenantId: string): Promise<TenantFeedSnapshot> {
    const row = await tenantSnapshot(db, tenantId);
    const templates = parse(row.templates);
    const byKind = new Map(templates.map((t) => [t.kind, t.body]));
    const tenantSettings = row.tenant?.settings ?? {};
    const pick = (key: string) => {
      const v = tenantSettings[key];
      return typeof v === "string" && v !== "" ? v : undefined;
    };
    const title = pick("sub_profile_title") ?? settings.profileTitle;
    const supportUrl = pick("sub_support_url") ?? settings.supportUrl;
    return {
      generation: toBigInt(row.generation) ?? 0n,
      nodes: parse<FeedNodeRow[]>(row.nodes)
        .map((n) => feedNode(n, settings.wgPeersPerInterface))
        .filter((n): n is FeedNode => n !== null),
      templates: {
        // The default the templates API shows for a tenant without its own, not the renderer's.
        remark: byKind.get("remark") ?? defaultTemplates.remark,
        ...(byKind.get("clash-meta") ? { clash: byKind.get("clash-meta") } : {}),
        ...(byKind.get("sing-box") ? { singbox: byKind.get("sing-box") } : {}),
      },
      pools: new Map(parse<PoolRow[]>(row.pools).map((p) => [p.id, feedPool(p, settings.wgReservedHosts)])),
      ...(title ? { title } : {}),
      ...(supportUrl ? { supportUrl } : {}),
    };
  }

  /** The tenant's snapshot at `generation` or newer (never older: an older one could be cached under a newer key). */
  function snapshotFor(tenantId: string, generation: bigint): Promise<TenantFeedSnapshot> {
    const held = snapshots.get(tenantId);
    if (held && held.generation >= generation) return held.promise;
    const promise = readSnapshot(tenantId);
    const entry = { generation, promise };
    snapshots.set(tenantId, entry);
    promise.then(
      (s) => {
        if (snapshots.get(tenantId) === entry) entry.generation = s.generation;
      },
      () => {
        if (snapshots.get(tenantId) === entry) snapshots.delete(tenantId);
      },
    );
    return promise;
  }

  /**
   * Decrypts only the secrets the subscriber's documents can contain: a Trojan password when one of
   * their nodes has a Trojan inbound, and so on. Fewer secrets in memory, fewer AES operations.
   */
  function credentialsOf(
    h: HeadRow,
    engines: readonly Engine[],
    nodes: readonly RenderNode[],
    addresses: string[],
  ) {
    if (h.xray_uuid === null) return null;
    const open = (boxed: string | null, column: string) =>
      boxed ? box.decrypt(boxed, credentialContext(column, h.user_id)) : "";
    const xray = engines.includes("xray");
    const has = (protocol: string) =>
      xray && nodes.some((n) => n.inbounds.some((i) => i.protocol === protocol));
    const credentials: Credentials = {
      xrayUuid: h.xray_uuid,
      trojanPassword: has("trojan") ? open(h.trojan_password_enc, "trojan_password") : "",
      shadowsocksPassword: has("shadowsocks") ? open(h.shadowsocks_password_enc, "shadowsocks_password") : "",
      wireguard: null,
    };
    const wgNodes = engines.includes("wireguard") && nodes.some((n) => n.wireguard !== null);
    if (wgNodes && h.wg_private_key_enc && addresses.length > 0) {
      credentials.wireguard = {
        privateKey: open(h.wg_private_key_enc, "wg_private_key"),
        presharedKey: open(h.wg_preshared_key_enc, "wg_preshared_key") || null,
        addresses,
      };
    }
    return credentials;
  }

  /** Builds the renderer's input for one subscriber (decrypts only the secrets its engines need). */
  async function viewOf(h: HeadRow): Promise<SubscriberView> {
    const snapshot = await snapshotFor(h.tenant_id, toBigInt(h.generation) ?? 0n);
    const allowedEngines = subscriberEngines(h.engines, h.user_engines);
    const addresses = clientAddresses(
      h.pool_id ? snapshot.pools.get(h.pool_id) : undefined,
      toBigInt(h.ip_offset),
    );
    const assigned = new Set(h.node_ids ? h.node_ids.split(",") : []);
    const nodes = renderNodesFor(snapshot.nodes, assigned, addresses[0] ?? null);
    const credentials = credentialsOf(h, allowedEngines, nodes, addresses);
    // Without credentials nothing can connect; WireGuard without an address (or node) cannot be configured.
    const engines = !credentials
      ? []
      : credentials.wireguard
        ? allowedEngines
        : allowedEngines.filter((e) => e !== "wireguard");
    const subscriber: Subscriber = {
      displayName: h.username,
      status: subscriberStatus(h.state, h.tenant_active),
      usage: usageOf(h),
      credentials: credentials ?? {
        xrayUuid: "",
        trojanPassword: "",
        shadowsocksPassword: "",
        wireguard: null,
      },
      engines,
    };
    return { head: h, snapshot, subscriber, allowedEngines, nodes };
  }

  return {
    viewOf,
    /** Forgets this process's copy of a tenant's snapshot (the next request reads it again). */
    dropTenant(tenantId: string) {
      snapshots.delete(tenantId);
    },
    tenants: () => snapshots.size,
  };
}
