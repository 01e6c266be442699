import { AppError, forbidden, type Logger, notFound, type SecretBox } from "@vpnpanel/common";
import type { Db } from "@vpnpanel/db";
import {
  blockReason,
  type Engine,
  qrSvg,
  resolveProxies,
  shareLink,
  type WireguardProxy,
  wireguardConf,
  wireguardFileName,
} from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import { type Actor, requireTenantPermission } from "../rbac/actor";
import { visibleTenantsSql } from "../shared/tenant-scope";
import type { HeadRow } from "./feed-queries";
import { headByUserId } from "./feed-queries";
import type { SubscriptionFeed } from "./feed-service";
import type { SubscriberView } from "./subscriber-view";

// What an admin sees for one subscriber: the same inputs and renderers as /sub/{token}, keyed by
// engine so the dashboard can show exactly what the user's allowed engines give them. Lookups follow
// the usual rules: another tenant's user is not found (404), a member without users:read gets 403.

/** The context the lifecycle encrypts a subscription token under (SecretBox AAD). */
export const subscriptionTokenContext = (subscriptionId: string) => `subscriptions.token:${subscriptionId}`;

export interface UserConfigs {
  user_id: string;
  subscription_id: string;
  /** null when the stored token cannot be shown (e.g. encrypted under another key). */
  subscription_url: string | null;
  status: string;
  /** Why the user's documents connect nowhere, or null. The artifacts below are the real ones. */
  blocked_reason: string | null;
  engines: Engine[];
  xray: { links: Array<{ node_id: string; name: string; protocol: string; link: string }> } | null;
  wireguard: {
    configs: Array<{ node_id: string; node_name: string; file_name: string; endpoint: string; conf: string }>;
  } | null;
  /** Inbounds or endpoints left out because they are invalid for their node's core. */
  skipped: Array<{ node_id: string; tag: string; errors: Array<{ field: string; message: string }> }>;
}

export function createUserConfigs(deps: {
  db: Db;
  box: SecretBox;
  feed: SubscriptionFeed;
  settings: { publicUrl: string };
  now: () => Date;
  log: Logger;
}) {
  const { db, box, feed, log } = deps;
  const publicUrl = deps.settings.publicUrl.replace(/\/+$/, "");

  async function load(actor: Actor, userId: string): Promise<SubscriberView> {
    const head: HeadRow | null = await headByUserId(db, userId, visibleTenantsSql(actor, sql`s.tenant_id`));
    if (!head) throw notFound("user");
    requireTenantPermission(actor, head.tenant_id, "users:read");
    return feed.viewOf(head);
  }

  function subscriptionUrl(h: HeadRow): string | null {
    try {
      return `${publicUrl}/sub/${box.decrypt(h.token_enc, subscriptionTokenContext(h.subscription_id))}`;
    } catch (err) {
      log.warn(
        { subscription_id: h.subscription_id, err: (err as Error).message },
        "subscription token unreadable",
      );
      return null;
    }
  }

  function wireguardProxies(view: SubscriberView): WireguardProxy[] {
    const { proxies } = resolveProxies(view.subscriber, view.nodes, {
      now: deps.now(),
      remarkTemplate: view.snapshot.templates.remark,
    });
    return proxies.filter((p): p is WireguardProxy => p.kind === "wireguard");
  }

  return {
    async configs(actor: Actor, userId: string): Promise<UserConfigs> {
      const view = await load(actor, userId);
      const { subscriber, snapshot, head } = view;
      const now = deps.now();
      const resolved = resolveProxies(subscriber, view.nodes, {
        now,
        remarkTemplate: snapshot.templates.remark,
      });
      const engines = view.allowedEngines;
      return {
        user_id: head.user_id,
        subscription_id: head.subscription_id,
        subscription_url: subscriptionUrl(head),
        status: subscriber.status,
        blocked_reason: blockReason(subscriber, now),
        engines: [...engines],
        xray: engines.includes("xray")
          ? {
              links: resolved.proxies.flatMap((p) =>
                p.kind === "xray"
                  ? [{ node_id: p.nodeId, name: p.name, protocol: p.protocol, link: shareLink(p) }]
                  : [],
              ),
            }
          : null,
        wireguard: engines.includes("wireguard")
          ? {
              configs: resolved.proxies.flatMap((p) =>
                p.kind === "wireguard"
                  ? [
                      {
                        node_id: p.nodeId,
                        node_name: p.nodeName,
                        file_name: wireguardFileName(p.nodeName),
                        endpoint: `${p.address.includes(":") ? `[${p.address}]` : p.address}:${p.port}`,
                        conf: wireguardConf(p),
                      },
                    ]
                  : [],
              ),
            }
          : null,
        skipped: resolved.skipped.map((s) => ({ node_id: s.nodeId, tag: s.tag, errors: s.errors })),
      };
    },

    /** SVG QR of the user's WireGuard .conf for `nodeId` (default: the first WireGuard node). */
    async wireguardQr(actor: Actor, userId: string, nodeId?: string): Promise<string> {
      const view = await load(actor, userId);
      if (!view.allowedEngines.includes("wireguard")) {
        throw forbidden("WireGuard is not allowed for this user");
      }
      const proxies = wireguardProxies(view);
      const proxy = nodeId === undefined ? proxies[0] : proxies.find((p) => p.nodeId === nodeId);
      if (!proxy) {
        throw new AppError(
          "not_found",
          nodeId === undefined ? "the user has no WireGuard node" : "no WireGuard config for this node",
        );
      }
      return qrSvg(wireguardConf(proxy));
    },
  };
}

export type UserConfigsService = ReturnType<typeof createUserConfigs>;
