import { createMemoryCoordinator } from "./memory";
import { createRedisCoordinator } from "./redis";
import type { Coordinator } from "./types";

export * from "./types";
export { createMemoryCoordinator, createRedisCoordinator };

export function createCoordinator(
  redisUrl: string | undefined,
  opts: { keyPrefix?: string } = {},
): Coordinator {
  return redisUrl ? createRedisCoordinator(redisUrl, opts) : createMemoryCoordinator();
}
