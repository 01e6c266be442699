import { randomBytes } from "node:crypto";
import { createLogger, manualClock } from "@vpnpanel/common";
import {
  type ControlConfig,
  type ControlPlane,
  createControlPlane,
  loadControlConfig,
} from "@vpnpanel/control";
import { type Coordinator, createMemoryCoordinator, createRedisCoordinator } from "@vpnpanel/coord";
import { createTestDatabase, type TestDatabase } from "./database";

export const redisUrl = process.env.REDIS_URL;

/** Configuration for tests: cheap Argon2, generous rate limits, a fixed secret key. */
export function testConfig(overrides: Record<string, string> = {}): ControlConfig {
  return loadControlConfig({
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    SECRET_KEY: Buffer.alloc(32, 7).toString("base64"),
    ARGON2_MEMORY_KIB: "1024",
    ARGON2_TIME_COST: "1",
    LOGIN_RATE_LIMIT_PER_IP: "10000",
    LOGIN_RATE_LIMIT_PER_ACCOUNT: "10000",
    DATA_DIR: "/nonexistent-test-data-dir",
    ...overrides,
  });
}

export interface TestControlPlane {
  cp: ControlPlane;
  clock: ReturnType<typeof manualClock>;
  testDb: TestDatabase;
  close(): Promise<void>;
}

/**
 * A control plane on a fresh migrated database, with Redis (own key prefix) when REDIS_URL is set,
 * and a manual clock starting now (tests move time instead of sleeping).
 */
export async function createTestControlPlane(
  opts: { env?: Record<string, string>; coord?: Coordinator } = {},
): Promise<TestControlPlane> {
  const testDb = await createTestDatabase();
  const clock = manualClock(new Date());
  const coord =
    opts.coord ??
    (redisUrl
      ? createRedisCoordinator(redisUrl, { keyPrefix: `vpt:${randomBytes(4).toString("hex")}:` })
      : createMemoryCoordinator(clock));
  const config = testConfig(opts.env);
  const cp = await createControlPlane(config, {
    database: testDb.database,
    coord,
    clock,
    skipMigrations: true,
    log: createLogger({ service: "test", level: config.LOG_LEVEL }),
  });
  return {
    cp,
    clock,
    testDb,
    async close() {
      await coord.close();
      await testDb.drop();
    },
  };
}
