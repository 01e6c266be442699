import { describe, expect, it } from "vitest";
import { createBatchLoader, createLru } from "./batching";

describe("createBatchLoader", () => {
  it("answers every lookup of one event-loop turn with one load, duplicates included", async () => {
    const calls: string[][] = [];
    const load = createBatchLoader(async (keys) => {
      calls.push(keys);
      return new Map(keys.filter((k) => k !== "missing").map((k) => [k, k.toUpperCase()]));
    });
    const results = await Promise.all([load("a"), load("b"), load("a"), load("missing")]);
    expect(results).toEqual(["A", "B", "A", undefined]);
    expect(calls).toEqual([["a", "b", "missing"]]);
    expect(await load("c")).toBe("C");
    expect(calls).toHaveLength(2);
  });

  it("splits large turns into bounded batches", async () => {
    const sizes: number[] = [];
    const load = createBatchLoader(
      async (keys) => {
        sizes.push(keys.length);
        return new Map(keys.map((k) => [k, k]));
      },
      { maxBatch: 2 },
    );
    await Promise.all(["1", "2", "3", "4", "5"].map(load));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it("keeps at most maxInFlight loads running; keys arriving meanwhile form the next batch", async () => {
    const sizes: number[] = [];
    let running = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const load = createBatchLoader(
      async (keys) => {
        sizes.push(keys.length);
        running += 1;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => release.push(r));
        running -= 1;
        return new Map(keys.map((k) => [k, k]));
      },
      { maxInFlight: 1 },
    );
    const first = load("a");
    await new Promise((r) => setImmediate(r));
    const later = ["b", "c", "d"].map(load);
    await new Promise((r) => setImmediate(r));
    expect(sizes).toEqual([1]);
    release.shift()!();
    expect(await first).toBe("a");
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    expect(sizes).toEqual([1, 3]);
    release.shift()!();
    expect(await Promise.all(later)).toEqual(["b", "c", "d"]);
    expect(peak).toBe(1);
  });

  it("rejects the waiters of a failed batch only", async () => {
    const load = createBatchLoader(async (keys) => {
      if (keys.includes("bad")) throw new Error("db down");
      return new Map(keys.map((k) => [k, k]));
    });
    await expect(load("bad")).rejects.toThrow("db down");
    expect(await load("good")).toBe("good");
  });
});

describe("createLru", () => {
  it("evicts the least recently used entries beyond the byte budget", () => {
    const lru = createLru<string>(10);
    lru.set("a", "A", 4);
    lru.set("b", "B", 4);
    expect(lru.get("a")).toBe("A"); // a is now the most recent
    lru.set("c", "C", 4);
    expect(lru.get("b")).toBeUndefined();
    expect(lru.get("a")).toBe("A");
    expect(lru.get("c")).toBe("C");
    expect(lru.bytes).toBe(8);
  });

  it("ignores a value larger than the whole budget and replaces an existing key", () => {
    const lru = createLru<string>(10);
    lru.set("big", "x", 11);
    expect(lru.size).toBe(0);
    lru.set("k", "1", 3);
    lru.set("k", "2", 5);
    expect(lru.get("k")).toBe("2");
    expect(lru.bytes).toBe(5);
  });
});
