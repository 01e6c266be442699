// Coordination primitives shared by control-plane replicas. With REDIS_URL they are backed by Redis;
// without it, by in-process implementations with the same semantics (single-process mode only).

export interface RateLimitResult {
  allowed: boolean;
  remaining: number;
  /** Seconds until the window frees a slot (for `Retry-After`). */
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /** Counts one hit against `key` in a fixed window of `windowSeconds`; `limit` hits are allowed. */
  hit(key: string, limit: number, windowSeconds: number): Promise<RateLimitResult>;
  reset(key: string): Promise<void>;
}

export interface LockHandle {
  readonly name: string;
  /** Extends the lease; false when the lock was lost (another holder took it after expiry). */
  renew(ttlMs: number): Promise<boolean>;
  release(): Promise<void>;
}

export interface Locks {
  /** Tries once to take the lock; null when another holder has it. */
  tryAcquire(name: string, ttlMs: number): Promise<LockHandle | null>;
}

export type MessageHandler = (message: string) => void;

export interface PubSub {
  publish(channel: string, message: string): Promise<void>;
  /** Returns an unsubscribe function. */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;
}

export interface Cache {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  del(...keys: string[]): Promise<void>;
}

export interface Coordinator {
  readonly kind: "memory" | "redis";
  readonly rateLimiter: RateLimiter;
  readonly locks: Locks;
  readonly pubsub: PubSub;
  readonly cache: Cache;
  ping(): Promise<void>;
  close(): Promise<void>;
}
