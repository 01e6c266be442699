import type { Collector } from "@vpnpanel/collector";
import { nodeSessionKey, systemActor } from "@vpnpanel/control";
import { CloseReason } from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestAgent } from "./support/agent";
import { createHarness, type Harness } from "./support/harness";

// Two collectors on one database and one coordinator (Redis with REDIS_URL): a command produced on
// one collector reaches a node whose stream lives on the other through that collector's own
// channel. Periodic checks are slowed to a minute here, so nothing but the routed message can
// deliver the removal in time.

let h: Harness;
let a: Collector;
let b: Collector;
let onA: { nodeId: string; agent: TestAgent };
let onB: { nodeId: string; agent: TestAgent };

beforeAll(async () => {
  h = await createHarness({ collector: { tickMs: 60_000, pollIntervalMs: 60_000 } });
  a = h.collector;
  b = await h.startCollector();
  const connect = async (via: Collector) => {
    const nodeId = await h.createNode();
    const agent = h.agent(await h.enrollNode(nodeId, via), via);
    agent.hello(0n);
    await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last);
    return { nodeId, agent };
  };
  onA = await connect(a);
  onB = await connect(b);
});
afterAll(async () => {
  await h?.close();
});

describe("several collectors", () => {
  it("each collector registers the nodes it holds", async () => {
    expect(await h.cp.coord.cache.get(nodeSessionKey(onA.nodeId))).toBe(a.collectorId);
    expect(await h.cp.coord.cache.get(nodeSessionKey(onB.nodeId))).toBe(b.collectorId);
  });

  it("a removal caused by usage on collector A reaches the node held by collector B, once", async () => {
    const [sub] = await h.seed({ count: 1, quotaBytes: 100n });
    const id = sub!.subscriptionId;
    await h.cp.nodes.rebalance(systemActor(), h.tenantId);
    const added = (t: TestAgent) =>
      t.waitFor((m) => m.body?.$case === "command" && m.body.value.action?.$case === "addUser");
    await added(onA.agent);
    await added(onB.agent);

    const started = Date.now();
    onA.agent.usage(1n, [{ userId: id, downlinkBytes: 500n }]);
    const removed = (t: TestAgent) =>
      t.waitFor(
        (m) =>
          m.body?.$case === "command" &&
          m.body.value.action?.$case === "removeUser" &&
          m.body.value.action.value === id,
        { timeoutMs: 5_000 },
      );
    await removed(onA.agent);
    await removed(onB.agent);
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 300));
    const count = (t: TestAgent) =>
      t.of("command").filter((c) => c.action?.$case === "removeUser" && c.action.value === id).length;
    expect(count(onA.agent)).toBe(1);
    expect(count(onB.agent)).toBe(1);
  });

  it("a node that reconnects to the other collector closes its old session there (SUPERSEDED)", async () => {
    const again = h.agent(await h.enrollNode(onA.nodeId, b), b);
    again.hello(0n);
    await again.waitFor((m) => m.body?.$case === "policy");
    // Re-enrolling revoked the old certificate, so either REVOKED or SUPERSEDED ends the old stream.
    const close = await onA.agent.waitFor((m) => m.body?.$case === "close");
    expect([CloseReason.SUPERSEDED, CloseReason.REVOKED]).toContain(
      close.body?.$case === "close" ? close.body.value.reason : -1,
    );
    await expect.poll(() => h.cp.coord.cache.get(nodeSessionKey(onA.nodeId))).toBe(b.collectorId);
  });
});
