import { describe, expect, it } from "vitest";
import { type AssignmentPolicy, type CandidateNode, chooseNodes } from "./strategies";

const nodes = (): CandidateNode[] => [
  { id: "n1", tags: ["eu"], engines: ["xray", "wireguard"], capacity: 10, load: 0 },
  { id: "n2", tags: ["us"], engines: ["xray"], capacity: 2, load: 0 },
  { id: "n3", tags: ["eu"], engines: ["wireguard"], capacity: null, load: 5 },
];
const policy = (p: Partial<AssignmentPolicy>): AssignmentPolicy => ({
  strategy: "all",
  tags: [],
  redundancy: 0,
  cursor: 0,
  ...p,
});

describe("assignment strategies", () => {
  it("all: every node sharing an engine, each primary", () => {
    expect(chooseNodes(policy({}), nodes(), ["xray"])).toEqual([
      { nodeId: "n1", role: "primary" },
      { nodeId: "n2", role: "primary" },
    ]);
  });

  it("manual: nothing", () => {
    expect(chooseNodes(policy({ strategy: "manual" }), nodes(), ["xray", "wireguard"])).toEqual([]);
  });

  it("round_robin: rotates over eligible nodes; redundancy follows the primary", () => {
    const p = policy({ strategy: "round_robin" });
    const pool = nodes();
    const picks = [0, 1, 2, 3].map(() => chooseNodes(p, pool, ["xray", "wireguard"])[0]!.nodeId);
    expect(picks).toEqual(["n1", "n2", "n3", "n1"]);
    expect(p.cursor).toBe(4);
    const r = chooseNodes(policy({ strategy: "round_robin", redundancy: 1, cursor: 1 }), nodes(), ["xray"]);
    expect(r).toEqual([
      { nodeId: "n2", role: "primary" },
      { nodeId: "n1", role: "redundant" },
    ]);
  });

  it("by_tag: least loaded tagged node first", () => {
    const pool = nodes();
    const p = policy({ strategy: "by_tag", tags: ["eu"], redundancy: 1 });
    expect(chooseNodes(p, pool, ["wireguard"])).toEqual([
      { nodeId: "n1", role: "primary" },
      { nodeId: "n3", role: "redundant" },
    ]);
    expect(chooseNodes(policy({ strategy: "by_tag", tags: ["asia"] }), pool, ["xray"])).toEqual([]);
  });

  it("by_capacity: most free slots; full nodes are skipped; unlimited yields on ties to the less loaded", () => {
    const pool = nodes();
    const p = policy({ strategy: "by_capacity" });
    expect(chooseNodes(p, pool, ["xray"])[0]!.nodeId).toBe("n1"); // 10 free vs 2
    pool[0]!.load = 10; // n1 full
    expect(chooseNodes(p, pool, ["xray"])[0]!.nodeId).toBe("n2");
    expect(chooseNodes(p, pool, ["xray"])[0]!.nodeId).toBe("n2");
    expect(chooseNodes(p, pool, ["xray"])).toEqual([]); // n2 full now too
    expect(chooseNodes(p, pool, ["wireguard"])[0]!.nodeId).toBe("n3");
  });

  it("loads move as subscriptions are assigned, so a batch spreads like one-by-one", () => {
    const pool = nodes();
    const p = policy({ strategy: "by_tag", tags: ["eu"] });
    // n1 starts empty, n3 with 5: n1 takes six (a tie goes by id), then n3 takes the seventh.
    const picks = Array.from({ length: 7 }, () => chooseNodes(p, pool, ["wireguard"])[0]!.nodeId);
    expect(picks).toEqual(["n1", "n1", "n1", "n1", "n1", "n1", "n3"]);
    expect(pool[0]!.load + pool[2]!.load).toBe(12);
  });
});
