// Assignment strategies: which nodes a new subscription gets. Pure; the caller loads the candidate
// nodes with their current load and writes the result. Loads are updated in place, so a batch of
// subscriptions assigned in one call spreads the same way one-by-one assignment would.
//
// - all: every eligible node, each as primary (Marzban-like: every user on every node). The default.
// - manual: nothing; an admin assigns.
// - round_robin: the next eligible node after the tenant's rotating cursor; redundant ones follow it.
// - by_tag: eligible nodes carrying any of the policy's tags, least loaded first.
// - by_capacity: eligible nodes with free capacity, most free slots first (a node without a capacity
//   counts as unlimited but yields to a node with fewer subscriptions on a tie).
// "Eligible" = shares at least one engine with the subscription.

export type Strategy = "all" | "manual" | "round_robin" | "by_tag" | "by_capacity";
export const STRATEGIES: readonly Strategy[] = ["all", "manual", "round_robin", "by_tag", "by_capacity"];

export interface CandidateNode {
  id: string;
  tags: readonly string[];
  engines: readonly string[];
  capacity: number | null;
  /** Subscriptions assigned now; incremented by chooseNodes. */
  load: number;
}

export interface AssignmentPolicy {
  strategy: Strategy;
  tags: readonly string[];
  /** Redundant nodes besides the primary (round_robin, by_tag, by_capacity). */
  redundancy: number;
  /** round_robin position; chooseNodes advances it. */
  cursor: number;
}

export interface Choice {
  nodeId: string;
  role: "primary" | "redundant";
}

const eligible = (node: CandidateNode, engines: readonly string[]) =>
  node.engines.some((e) => engines.includes(e));

const free = (n: CandidateNode) => (n.capacity === null ? Number.POSITIVE_INFINITY : n.capacity - n.load);

function pick(ordered: CandidateNode[], count: number): Choice[] {
  return ordered.slice(0, count).map((node, i) => {
    node.load += 1;
    return { nodeId: node.id, role: i === 0 ? "primary" : "redundant" };
  });
}

/** Picks nodes for one subscription with `engines`; nodes are sorted by id by the caller. */
export function chooseNodes(
  policy: AssignmentPolicy,
  nodes: readonly CandidateNode[],
  engines: readonly string[],
): Choice[] {
  const pool = nodes.filter((n) => eligible(n, engines));
  const count = 1 + Math.max(0, policy.redundancy);
  switch (policy.strategy) {
    case "manual":
      return [];
    case "all":
      return pool.map((node) => {
        node.load += 1;
        return { nodeId: node.id, role: "primary" };
      });
    case "round_robin": {
      if (pool.length === 0) return [];
      const start = policy.cursor % pool.length;
      policy.cursor += 1;
      const rotated = [...pool.slice(start), ...pool.slice(0, start)];
      return pick(rotated, count);
    }
    case "by_tag": {
      const tagged = pool.filter((n) => n.tags.some((t) => policy.tags.includes(t)));
      return pick(
        [...tagged].sort((a, b) => a.load - b.load || a.id.localeCompare(b.id)),
        count,
      );
    }
    case "by_capacity": {
      const open = pool.filter((n) => free(n) > 0);
      return pick(
        [...open].sort((a, b) => free(b) - free(a) || a.load - b.load || a.id.localeCompare(b.id)),
        count,
      );
    }
  }
}
