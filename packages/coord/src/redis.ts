import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Coordinator, MessageHandler } from "./types";

// Compare-and-act scripts: a lock is renewed or released only by the holder that owns its token.
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
// Fixed-window counter: INCR, set the expiry on the first hit, report the remaining TTL.
const HIT = `local c = redis.call("incr", KEYS[1])
if c == 1 then redis.call("expire", KEYS[1], ARGV[1]) end
local ttl = redis.call("ttl", KEYS[1])
if ttl < 0 then redis.call("expire", KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`;

export function createRedisCoordinator(url: string, opts: { keyPrefix?: string } = {}): Coordinator {
  const prefix = opts.keyPrefix ?? "vpnpanel:";
  const client = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  // Subscriptions need their own connection (a subscribed Redis connection can do nothing else).
  let sub: Redis | undefined;
  const handlers = new Map<string, Set<MessageHandler>>();
  client.on("error", () => {});

  const subscriber = () => {
    if (!sub) {
      sub = client.duplicate();
      sub.on("error", () => {});
      sub.on("message", (channel: string, message: string) => {
        for (const h of handlers.get(channel) ?? []) h(message);
      });
    }
    return sub;
  };

  return {
    kind: "redis",
    rateLimiter: {
      async hit(key, limit, windowSeconds) {
        const [count, ttl] = (await client.eval(HIT, 1, `${prefix}rl:${key}`, windowSeconds)) as [
          number,
          number,
        ];
        const allowed = count <= limit;
        return {
          allowed,
          remaining: Math.max(0, limit - count),
          retryAfterSeconds: allowed ? 0 : Math.max(1, ttl),
        };
      },
      async reset(key) {
        await client.del(`${prefix}rl:${key}`);
      },
    },
    locks: {
      async tryAcquire(name, ttlMs) {
        const key = `${prefix}lock:${name}`;
        const token = randomUUID();
        const ok = await client.set(key, token, "PX", ttlMs, "NX");
        if (ok !== "OK") return null;
        return {
          name,
          async renew(ms) {
            return (await client.eval(RENEW, 1, key, token, ms)) === 1;
          },
          async release() {
            await client.eval(RELEASE, 1, key, token);
          },
        };
      },
    },
    pubsub: {
      async publish(channel, message) {
        await client.publish(`${prefix}${channel}`, message);
      },
      async subscribe(channel, handler) {
        const full = `${prefix}${channel}`;
        let set = handlers.get(full);
        if (!set) {
          set = new Set();
          handlers.set(full, set);
          await subscriber().subscribe(full);
        }
        set.add(handler);
        return async () => {
          set.delete(handler);
          if (set.size === 0) {
            handlers.delete(full);
            await subscriber().unsubscribe(full);
          }
        };
      },
    },
    cache: {
      async get(key) {
        return client.get(`${prefix}c:${key}`);
      },
      async set(key, value, ttlSeconds) {
        await client.set(`${prefix}c:${key}`, value, "EX", ttlSeconds);
      },
      async del(...keys) {
        if (keys.length) await client.del(...keys.map((k) => `${prefix}c:${k}`));
      },
    },
    async ping() {
      await client.ping();
    },
    async close() {
      await Promise.allSettled([client.quit(), sub?.quit()]);
    },
  };
}
