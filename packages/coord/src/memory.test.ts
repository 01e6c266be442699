import { manualClock } from "@vpnpanel/common";
import { describe, expect, it } from "vitest";
import { createMemoryCoordinator } from "./memory";

describe("memory coordinator", () => {
  it("rate-limits within a window and allows again after it", async () => {
    const clock = manualClock("2026-03-01T00:00:00Z");
    const c = createMemoryCoordinator(clock);
    expect((await c.rateLimiter.hit("ip:1", 2, 60)).allowed).toBe(true);
    expect((await c.rateLimiter.hit("ip:1", 2, 60)).allowed).toBe(true);
    const third = await c.rateLimiter.hit("ip:1", 2, 60);
    expect(third).toMatchObject({ allowed: false, retryAfterSeconds: 60 });
    clock.advance(60_000);
    expect((await c.rateLimiter.hit("ip:1", 2, 60)).allowed).toBe(true);
  });

  it("drops expired rate-limit windows and cache entries, so memory follows the live keys", async () => {
    const clock = manualClock("2026-03-01T00:00:00Z");
    const c = createMemoryCoordinator(clock);
    for (let i = 0; i < 10_000; i++) await c.rateLimiter.hit(`token:${i}`, 10, 1);
    for (let i = 0; i < 5_000; i++) await c.cache.set(`k:${i}`, "v", 1);
    expect(c.entries()).toBeGreaterThan(10_000);
    clock.advance(2_000);
    // New keys keep arriving; the old ones have expired and must not be kept.
    for (let i = 0; i < 10_000; i++) await c.rateLimiter.hit(`later:${i}`, 10, 60);
    expect(c.entries()).toBeLessThanOrEqual(10_000 + 4096);
    expect((await c.rateLimiter.hit("later:1", 10, 60)).remaining).toBe(8);
  });
});
