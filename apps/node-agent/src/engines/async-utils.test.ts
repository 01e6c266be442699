import { describe, expect, it } from "vitest";
import { backoffDelayMs, createListeners, createSerialLock, mapBounded } from "./async-utils";

describe("mapBounded", () => {
  it("keeps input order and never exceeds the limit in flight", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0], 2, async (n) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await Promise.resolve();
      inFlight--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(2);
  });
});

describe("createSerialLock", () => {
  it("runs sections one at a time, and a failing section does not block the next", async () => {
    const lock = createSerialLock();
    const log: string[] = [];
    const a = lock(async () => {
      log.push("a1");
      await Promise.resolve();
      log.push("a2");
    });
    const b = lock(async () => {
      log.push("b");
      throw new Error("x");
    });
    const c = lock(async () => log.push("c"));
    await Promise.allSettled([a, b, c]);
    expect(log).toEqual(["a1", "a2", "b", "c"]);
  });
});

describe("listeners and backoff", () => {
  it("a throwing listener does not stop the others", () => {
    const errors: unknown[] = [];
    const l = createListeners<{ x: (n: number) => void }>((e) => errors.push(e));
    const seen: number[] = [];
    l.on("x", () => {
      throw new Error("boom");
    });
    const off = l.on("x", (n) => seen.push(n));
    l.emit("x", 1);
    off();
    l.emit("x", 2);
    expect(seen).toEqual([1]);
    expect(errors).toHaveLength(2);
  });
  it("backs off exponentially up to a cap", () => {
    expect([1, 2, 3, 4, 10, 100].map((a) => backoffDelayMs(a))).toEqual([
      500, 1000, 2000, 4000, 30_000, 30_000,
    ]);
  });
});
