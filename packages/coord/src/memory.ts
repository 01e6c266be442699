import { randomUUID } from "node:crypto";
import type { Clock } from "@vpnpanel/common";
import { systemClock } from "@vpnpanel/common";
import type { Coordinator, LockHandle, MessageHandler } from "./types";

/** In-process coordination for the single-process default. */
export function createMemoryCoordinator(clock: Clock = systemClock): Coordinator & {
  /** Rate-limit windows and cache entries held (expired ones until swept). */ entries(): number;
} {
  const windows = new Map<string, { count: number; resetAt: number }>();
  const locks = new Map<string, { token: string; expiresAt: number }>();
  const channels = new Map<string, Set<MessageHandler>>();
  const cache = new Map<string, { value: string; expiresAt: number }>();
  const now = () => clock.now().getTime();

  // Keys are per IP, account and subscription token, so the maps would grow without bound in a
  // long-running process. Every SWEEP_EVERY writes, entries whose window or TTL has passed are
  // dropped: amortised O(1) per write, and memory stays proportional to the live keys.
  const SWEEP_EVERY = 4096;
  let writes = 0;
  const sweepIfDue = () => {
    if (++writes % SWEEP_EVERY !== 0) return;
    const t = now();
    for (const [k, w] of windows) if (w.resetAt <= t) windows.delete(k);
    for (const [k, e] of cache) if (e.expiresAt <= t) cache.delete(k);
  };

  return {
    kind: "memory",
    rateLimiter: {
      async hit(key, limit, windowSeconds) {
        const t = now();
        let w = windows.get(key);
        if (!w || w.resetAt <= t) {
          sweepIfDue();
          w = { count: 0, resetAt: t + windowSeconds * 1000 };
          windows.set(key, w);
        }
        w.count += 1;
        const allowed = w.count <= limit;
        return {
          allowed,
          remaining: Math.max(0, limit - w.count),
          retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((w.resetAt - t) / 1000)),
        };
      },
      async reset(key) {
        windows.delete(key);
      },
    },
    locks: {
      async tryAcquire(name, ttlMs) {
        const t = now();
        const held = locks.get(name);
        if (held && held.expiresAt > t) return null;
        const token = randomUUID();
        locks.set(name, { token, expiresAt: t + ttlMs });
        const handle: LockHandle = {
          name,
          async renew(ms) {
            const cur = locks.get(name);
            if (!cur || cur.token !== token) return false;
            cur.expiresAt = now() + ms;
            return true;
          },
          async release() {
            if (locks.get(name)?.token === token) locks.delete(name);
          },
        };
        return handle;
      },
    },
    pubsub: {
      async publish(channel, message) {
        for (const h of channels.get(channel) ?? []) queueMicrotask(() => h(message));
      },
      async subscribe(channel, handler) {
        let set = channels.get(channel);
        if (!set) {
          set = new Set();
          channels.set(channel, set);
        }
        set.add(handler);
        return async () => {
          set.delete(handler);
        };
      },
    },
    cache: {
      async get(key) {
        const e = cache.get(key);
        if (!e) return null;
        if (e.expiresAt <= now()) {
          cache.delete(key);
          return null;
        }
        return e.value;
      },
      async set(key, value, ttlSeconds) {
        sweepIfDue();
        cache.set(key, { value, expiresAt: now() + ttlSeconds * 1000 });
      },
      async del(...keys) {
        for (const k of keys) cache.delete(k);
      },
    },
    entries: () => windows.size + cache.size,
    async ping() {},
    async close() {
      channels.clear();
    },
  };
}
