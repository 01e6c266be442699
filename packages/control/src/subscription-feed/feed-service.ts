import { createHash } from "node:crypto";
import { type Clock, type Logger, type SecretBox, VERSION } from "@vpnpanel/common";
import type { Coordinator } from "@vpnpanel/coord";
import type { Db } from "@vpnpanel/db";
import { isSubscriptionToken } from "@vpnpanel/domain";
import {
  renderSubscription,
  type SubscriptionFormat,
  subscriptionUserinfoHeader,
  type Usage,
} from "@vpnpanel/render";
import { sql } from "drizzle-orm";
import type { ControlConfig } from "../config";
import { createBatchLoader, createLru } from "./batching";
import { etagOf, ifNoneMatchHits, splitUsage, subscriberStatus } from "./feed-model";
import { headsByTokenHash, type LightHead, lightHeadsByTokenHash } from "./feed-queries";
import { createSubscriberViews } from "./subscriber-view";

// GET /sub/{token}: token → light head (one batched query, no secrets) → ETag → 304, or the document
// from the in-process cache, the shared (Redis) cache, or a render from the full head. Cache keys ARE
// the ETags, and an ETag is a hash of every input (a digest of the subscriber's rows, the tenant's
// config generation, the usage bucket, format, settings), so a change anywhere simply names a new
// entry: nothing is invalidated, no replica serves what another already knows to be stale, and a 304
// never touches the document.

/** Bump when the feed's own output changes without a change of inputs or package version. */
const FEED_FORMAT = "1";

export interface FeedSettings {
  /** Base of subscription URLs (PUBLIC_URL), no trailing slash needed. */
  publicUrl: string;
  updateIntervalHours: number;
  rateLimitPerMinute: number;
  profileTitle?: string | undefined;
  supportUrl?: string | undefined;
  /** Shared (coord) cache TTL; 0 keeps rendered documents in this process only. */
  cacheTtlSeconds: number;
  cacheMemoryBytes: number;
  wgReservedHosts: number;
  wgPeersPerInterface: number;
}

export function feedSettings(config: ControlConfig): FeedSettings {
  return {
    publicUrl: config.PUBLIC_URL,
    updateIntervalHours: config.SUB_UPDATE_INTERVAL_HOURS,
    rateLimitPerMinute: config.SUB_RATE_LIMIT_PER_MINUTE,
    profileTitle: config.SUB_PROFILE_TITLE,
    supportUrl: config.SUB_SUPPORT_URL,
    cacheTtlSeconds: config.SUB_CACHE_TTL_SECONDS,
    cacheMemoryBytes: config.SUB_CACHE_MEMORY_MB * 1024 * 1024,
    wgReservedHosts: config.WG_POOL_RESERVED_HOSTS,
    wgPeersPerInterface: config.WG_PEERS_PER_INTERFACE,
  };
}

export interface FeedRequest {
  token: string;
  format: SubscriptionFormat;
  /** The format came from `?format=`: the response does not vary by User-Agent. */
  explicitFormat: boolean;
  /** `wireguard` only: this node's .conf; unknown for the subscriber → 404. */
  nodeId?: string;
  ifNoneMatch?: string;
}

export type FeedResponse =
  | { status: 404 }
  | { status: 429; retryAfterSeconds: number }
  | { status: 304; headers: Record<string, string> }
  | { status: 200; headers: Record<string, string>; body: Buffer };

// Bodies are kept as Buffers: their bytes live outside the V8 heap, so thousands of cached documents
// add almost nothing to what the garbage collector has to walk, and they are sent without re-encoding.
interface CachedDocument {
  body: Buffer;
  headers: Record<string, string>;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Usage from the light head ("used:upload:download", expiry in ms). */
export function lightUsage(h: LightHead): Usage {
  const [used = "0", up = "0", down = "0"] = h.usage ? h.usage.split(":") : [];
  const quota = h.quota_bytes === null ? null : Number(h.quota_bytes);
  return {
    ...splitUsage(BigInt(used), BigInt(up), BigInt(down)),
    total: quota,
    expireAt: h.expires_ms === null ? null : new Date(Number(h.expires_ms)),
  };
}

export function createSubscriptionFeed(deps: {
  db: Db;
  box: SecretBox;
  coord: Coordinator;
  clock: Clock;
  log: Logger;
  settings: FeedSettings;
}) {
  const { db, box, coord, clock, log, settings } = deps;
  const publicUrl = settings.publicUrl.replace(/\/+$/, "");
  const settingsStamp = createHash("sha256")
    .update(
      JSON.stringify([
        FEED_FORMAT,
        VERSION,
        publicUrl,
        settings.updateIntervalHours,
        settings.profileTitle ?? null,
        settings.supportUrl ?? null,
        settings.wgReservedHosts,
        settings.wgPeersPerInterface,
      ]),
    )
    .digest("base64url")
    .slice(0, 16);

  // Every request reads the light head; only a render reads the full one (with the secrets).
  // Two light queries in flight at most: under load the next batch simply grows (fewer, larger queries).
  const loadLight = createBatchLoader(
    async (hashes) => {
      const rows = await lightHeadsByTokenHash(db, hashes);
      return new Map(rows.map((r) => [r.token_hash, r]));
    },
    { maxInFlight: 2 },
  );
  const loadFull = createBatchLoader(async (hashes) => {
    const rows = await headsByTokenHash(db, hashes);
    return new Map(rows.map((r) => [r.token_hash, r]));
  });

  const documents = createLru<CachedDocument>(settings.cacheMemoryBytes);
  const rendering = new Map<string, Promise<CachedDocument | null>>();
  const counters = { renders: 0, sharedHits: 0, notModified: 0 };
  // In single-process mode the coordinator's cache is another map in this process: it would only
  // duplicate the bounded LRU without a bound of its own.
  const shared = settings.cacheTtlSeconds > 0 && coord.kind === "redis";
  const views = createSubscriberViews({ db, box, settings });

  async function render(tokenHash: string, req: FeedRequest): Promise<CachedDocument | null> {
    counters.renders += 1;
    // Read after the light head, so never older than the ETag it is cached under.
    const h = await loadFull(tokenHash);
    if (!h) return null;
    const view = await views.viewOf(h);
    if (req.nodeId !== undefined) {
      const ok =
        view.subscriber.engines.includes("wireguard") &&
        view.nodes.some((n) => n.id === req.nodeId && n.wireguard !== null);
      if (!ok) return null;
    }
    const { snapshot } = view;
    const doc = await renderSubscription(req.format, {
      subscriber: view.subscriber,
      nodes: view.nodes,
      now: clock.now(),
      remarkTemplate: snapshot.templates.remark,
      clashTemplate: snapshot.templates.clash ?? null,
      singboxTemplate: snapshot.templates.singbox ?? null,
      ...(req.nodeId ? { nodeId: req.nodeId } : {}),
      ...(snapshot.title ? { title: snapshot.title } : {}),
      ...(snapshot.supportUrl ? { supportUrl: snapshot.supportUrl } : {}),
      subscriptionUrl: `${publicUrl}/sub/${req.token}`,
      updateIntervalHours: settings.updateIntervalHours,
    });
    if (doc.skipped.length > 0 || doc.warnings.length > 0) {
      log.warn(
        {
          subscription_id: h.subscription_id,
          tenant_id: h.tenant_id,
          skipped: doc.skipped,
          warnings: doc.warnings,
        },
        "subscription rendered with skipped entries",
      );
    }
    return { body: Buffer.from(doc.body, "utf8"), headers: doc.headers };
  }

  async function documentFor(
    etag: string,
    tokenHash: string,
    req: FeedRequest,
  ): Promise<CachedDocument | null> {
    const local = documents.get(etag);
    if (local) return local;
    let inflight = rendering.get(etag);
    if (!inflight) {
      inflight = (async () => {
        const key = `subfeed:${etag.slice(1, -1)}`;
        if (shared) {
          const hit = await coord.cache.get(key).catch(() => null);
          if (hit) {
            counters.sharedHits += 1;
            const stored = JSON.parse(hit) as { body: string; headers: Record<string, string> };
            return { body: Buffer.from(stored.body, "utf8"), headers: stored.headers };
          }
        }
        const doc = await render(tokenHash, req);
        if (doc && shared) {
          coord.cache
            .set(
              key,
              JSON.stringify({ body: doc.body.toString("utf8"), headers: doc.headers }),
              settings.cacheTtlSeconds,
            )
            .catch((err) => log.warn({ err }, "subscription cache write failed"));
        }
        return doc;
      })().finally(() => rendering.delete(etag));
      rendering.set(etag, inflight);
    }
    const doc = await inflight;
    if (doc) documents.set(etag, doc, doc.body.length + 512);
    return doc;
  }

  return {
    /** Serves one request for a subscription document. */
    async serve(req: FeedRequest): Promise<FeedResponse> {
      // Junk that could never be a token gets the same 404 without touching any shared state.
      if (!isSubscriptionToken(req.token)) return { status: 404 };
      const tokenHash = hashToken(req.token);
      // Limited per token, known or not: probing many tokens costs the prober, not the database.
      const [limit, head] = await Promise.all([
        coord.rateLimiter.hit(`sub:${tokenHash.slice(0, 32)}`, settings.rateLimitPerMinute, 60),
        loadLight(tokenHash),
      ]);
      if (!limit.allowed) return { status: 429, retryAfterSeconds: limit.retryAfterSeconds };
      if (!head) return { status: 404 };

      const usage = lightUsage(head);
      const etag = etagOf({
        subscriptionId: head.subscription_id,
        tokenHash,
        stamp: head.stamp,
        usage,
        status: subscriberStatus(head.state, head.tenant_active === true),
        format: req.format,
        nodeId: req.nodeId ?? null,
        settingsStamp,
        now: clock.now(),
      });
      const common: Record<string, string> = {
        etag,
        "cache-control": "private, no-cache",
        // The URL is a secret: browsers must not leak it to the sites the page links to.
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "subscription-userinfo": subscriptionUserinfoHeader(usage),
        "profile-update-interval": String(settings.updateIntervalHours),
      };
      if (!req.explicitFormat) common.vary = "User-Agent";
      if (ifNoneMatchHits(req.ifNoneMatch, etag)) {
        counters.notModified += 1;
        return { status: 304, headers: common };
      }

      const doc = await documentFor(etag, tokenHash, req);
      if (!doc) return { status: 404 };
      return { status: 200, headers: { ...doc.headers, ...common }, body: doc.body };
    },

    /** Render inputs for a subscriber found by the caller (admin views). */
    viewOf: views.viewOf,

    /** Drops this process's copy of a tenant's snapshot; other replicas follow the generation. */
    async tenantChanged(tenantId: string): Promise<void> {
      await db.execute(sql`SELECT sub_feed_bump(${tenantId})`);
      views.dropTenant(tenantId);
    },

    stats() {
      return {
        ...counters,
        documents: documents.size,
        documentBytes: documents.bytes,
        tenants: views.tenants(),
      };
    },
  };
}

export type SubscriptionFeed = ReturnType<typeof createSubscriptionFeed>;
