import { describe, expect, it } from "vitest";
import { createBaselineTable } from "./baseline-table";

describe("createBaselineTable", () => {
  it("behaves like a map of baselines: set, overwrite, delete, reuse of freed slots, clear", () => {
    const table = createBaselineTable();
    for (let i = 0; i < 3_000; i++)
      table.set(`xray:u${i}`, { generation: `g${i % 3}`, up: i, down: 2 ** 40 + i });
    expect(table.size).toBe(3_000);
    expect(table.get("xray:u2999")).toEqual({ generation: "g2", up: 2999, down: 2 ** 40 + 2999 });
    table.set("xray:u5", { generation: "g9", up: 1, down: 2 });
    expect(table.get("xray:u5")).toEqual({ generation: "g9", up: 1, down: 2 });
    table.delete("xray:u6");
    table.delete("xray:missing");
    expect(table.has("xray:u6")).toBe(false);
    expect(table.size).toBe(2_999);
    table.set("wireguard:u6", { generation: "w", up: 7, down: 8 });
    expect(table.get("wireguard:u6")).toEqual({ generation: "w", up: 7, down: 8 });
    expect([...table].find(([key]) => key === "xray:u5")).toEqual([
      "xray:u5",
      { generation: "g9", up: 1, down: 2 },
    ]);
    table.clear();
    expect([...table]).toEqual([]);
    expect(table.get("xray:u5")).toBeUndefined();
  });
});
