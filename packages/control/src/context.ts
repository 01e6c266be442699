import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type Clock,
  ConfigError,
  createLogger,
  createSecretBox,
  type Logger,
  parseSecretKey,
  type SecretBox,
  systemClock,
} from "@vpnpanel/common";
import { type Coordinator, createCoordinator } from "@vpnpanel/coord";
import { type Database, migrate, openDatabase } from "@vpnpanel/db";
import { createAdminsService } from "./admins/admins-service";
import { createAuthService } from "./auth/auth-service";
import { createPasswordHasher } from "./auth/passwords";
import { createKeyStore } from "./auth/signing-keys";
import type { ControlConfig } from "./config";
import { createNodeControlPlane, type NodeControlServices } from "./nodes/wiring";
import { createSubscriptionFeed, feedSettings } from "./subscription-feed/feed-service";
import { createUserConfigs } from "./subscription-feed/user-configs";
import { createLifecycleServices, type LifecycleServices } from "./subscriptions/wiring";
import { createTemplatesService } from "./templates/templates-service";
import { createTenantsService } from "./tenants/tenants-service";

/** Everything a control-plane role needs, wired once per process (features: nodes/ and subscriptions/ wiring). */
export interface ControlPlane extends NodeControlServices, LifecycleServices {
  config: ControlConfig;
  log: Logger;
  clock: Clock;
  database: Database;
  coord: Coordinator;
  box: SecretBox;
  hasher: ReturnType<typeof createPasswordHasher>;
  keys: ReturnType<typeof createKeyStore>;
  auth: ReturnType<typeof createAuthService>;
  tenants: ReturnType<typeof createTenantsService>;
  admins: ReturnType<typeof createAdminsService>;
  templates: ReturnType<typeof createTemplatesService>;
  subscriptionFeed: ReturnType<typeof createSubscriptionFeed>;
  userConfigs: ReturnType<typeof createUserConfigs>;
  close(): Promise<void>;
}

export interface ControlOverrides {
  clock?: Clock;
  log?: Logger;
  database?: Database;
  coord?: Coordinator;
  /** Skip running migrations (tests that load a migrated template). */
  skipMigrations?: boolean;
}

export function databaseUrl(config: ControlConfig): string {
  return config.DATABASE_URL ?? join(resolve(config.DATA_DIR), "pglite");
}

/**
 * The key that encrypts secrets at rest. With a server database it must come from the environment
 * (every replica needs the same one); in embedded mode it is generated once into DATA_DIR.
 */
export function resolveSecretKey(config: ControlConfig, log?: Logger): Buffer {
  if (config.SECRET_KEY) {
    try {
      return parseSecretKey(config.SECRET_KEY);
    } catch (e) {
      throw new ConfigError([`SECRET_KEY: ${(e as Error).message}`]);
    }
  }
  if (config.DATABASE_URL) {
    throw new ConfigError(["SECRET_KEY is required when DATABASE_URL is set (all replicas must share it)"]);
  }
  const dir = resolve(config.DATA_DIR);
  const file = join(dir, "secret.key");
  if (existsSync(file)) return parseSecretKey(readFileSync(file, "utf8").trim());
  mkdirSync(dir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString("base64")}\n`, { mode: 0o600 });
  log?.warn({ file }, "generated a new SECRET_KEY for embedded mode; back this file up with the data");
  return key;
}

export async function createControlPlane(
  config: ControlConfig,
  o: ControlOverrides = {},
): Promise<ControlPlane> {
  const log =
    o.log ?? createLogger({ service: "vpnpanel", level: config.LOG_LEVEL, pretty: config.LOG_PRETTY });
  const clock = o.clock ?? systemClock;
  const box = createSecretBox(resolveSecretKey(config, log));
  const database =
    o.database ?? (await openDatabase({ url: databaseUrl(config), poolSize: config.DATABASE_POOL_SIZE }));
  if (!o.skipMigrations) {
    const applied = await migrate(database);
    if (applied.length) log.info({ applied }, "database migrations applied");
  }
  const coord = o.coord ?? createCoordinator(config.REDIS_URL);
  const db = database.db;
  const hasher = createPasswordHasher({
    memoryKib: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
    parallelism: config.ARGON2_PARALLELISM,
  });
  const keys = createKeyStore(db, box, clock);
  const auth = createAuthService({
    db,
    keys,
    hasher,
    clock,
    rateLimiter: coord.rateLimiter,
    settings: {
      issuer: config.JWT_ISSUER,
      accessTtlSeconds: config.JWT_ACCESS_TTL_SECONDS,
      refreshTtlSeconds: config.JWT_REFRESH_TTL_SECONDS,
      loginLimitPerIp: config.LOGIN_RATE_LIMIT_PER_IP,
      loginLimitPerAccount: config.LOGIN_RATE_LIMIT_PER_ACCOUNT,
      loginWindowSeconds: config.LOGIN_RATE_LIMIT_WINDOW_SECONDS,
    },
  });
  const feedDeps = { db, box, coord, clock, log, settings: feedSettings(config) };
  const subscriptionFeed = createSubscriptionFeed(feedDeps);
  const nodeWiring = createNodeControlPlane(config, database, box, clock, coord);
  return {
    config,
    log,
    clock,
    database,
    coord,
    box,
    hasher,
    keys,
    auth,
    tenants: createTenantsService(db),
    admins: createAdminsService(db, hasher),
    templates: createTemplatesService(db, clock, (tenantId) => subscriptionFeed.tenantChanged(tenantId)),
    subscriptionFeed,
    userConfigs: createUserConfigs({ ...feedDeps, feed: subscriptionFeed, now: () => clock.now() }),
    ...nodeWiring,
    ...createLifecycleServices(config, db, box, clock, log),
    async close() {
      await coord.close();
      await database.close();
    },
  };
}
