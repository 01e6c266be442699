import { describe, expect, it } from "vitest";
import { reconnectDelayMs } from "./backoff";

const policy = { baseMs: 500, maxMs: 30_000 };

describe("reconnect backoff", () => {
  it("doubles per failure up to the cap", () => {
    const full = (attempt: number) => reconnectDelayMs(attempt, policy, () => 1);
    expect([1, 2, 3, 4, 7, 8, 50].map(full)).toEqual([500, 1000, 2000, 4000, 30_000, 30_000, 30_000]);
  });

  it("jitter keeps every delay between half and all of the nominal one", () => {
    for (let attempt = 1; attempt < 12; attempt++) {
      const nominal = Math.min(30_000, 500 * 2 ** (attempt - 1));
      expect(reconnectDelayMs(attempt, policy, () => 0)).toBe(nominal / 2);
      const d = reconnectDelayMs(attempt, policy, Math.random);
      expect(d).toBeGreaterThanOrEqual(nominal / 2);
      expect(d).toBeLessThanOrEqual(nominal);
    }
  });
});
