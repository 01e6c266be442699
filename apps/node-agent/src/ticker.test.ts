import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startTicker } from "./ticker";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ticker", () => {
  it("reads the interval at every arming, and a rearm applies a shorter one at once", async () => {
    let interval = 10_000;
    const at: number[] = [];
    const ticker = startTicker(
      () => interval,
      async () => void at.push(Date.now()),
      () => undefined,
    );
    const t0 = Date.now();
    interval = 1_000; // the policy arrives: without a rearm the first tick would still wait 10 s
    ticker.rearm();
    await vi.advanceTimersByTimeAsync(3_000);
    expect(at.map((t) => t - t0)).toEqual([1_000, 2_000, 3_000]);
    ticker.stop();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(at).toHaveLength(3);
  });

  it("never runs two ticks at once, and a failing tick does not stop the next", async () => {
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    const errors: unknown[] = [];
    const ticker = startTicker(
      () => 100,
      async () => {
        calls++;
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((resolve) => setTimeout(resolve, 250));
        active--;
        if (calls === 1) throw new Error("boom");
      },
      (error) => errors.push(error),
    );
    await vi.advanceTimersByTimeAsync(1_000);
    ticker.stop();
    expect(maxActive).toBe(1);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(errors).toHaveLength(1);
  });
});
