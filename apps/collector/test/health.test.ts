import { systemActor } from "@vpnpanel/control";
import { Engine, EngineStatus, LeaseState } from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestAgent } from "./support/agent";
import { createHarness, type Harness } from "./support/harness";

// Node health as the API reports it and as the collector's per-node gauges show it: last seen, agent
// version, per-engine status, usage lag, degraded after NODE_DEGRADED_AFTER_SECONDS of silence.

let h: Harness;
let nodeId: string;
let agent: TestAgent;

const gauge = async (name: string) => {
  const metric = (
    h.collector.metrics as unknown as Record<
      string,
      { get(): Promise<{ values: Array<{ labels: Record<string, string>; value: number }> }> }
    >
  )[name]!;
  return (await metric.get()).values.find((v) => v.labels.node_id === nodeId)?.value;
};

beforeAll(async () => {
  h = await createHarness({ env: { NODE_DEGRADED_AFTER_SECONDS: "30" } });
  const [sub] = await h.seed({ count: 1, quotaBytes: null });
  nodeId = await h.createNode();
  agent = h.agent(await h.enrollNode(nodeId));
  agent.hello(0n);
  await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last);
  agent.send({
    body: {
      $case: "health",
      value: {
        reportedAt: new Date(),
        engines: [
          {
            engine: Engine.XRAY,
            status: EngineStatus.RUNNING,
            coreUptimeSeconds: 100n,
            usersServed: 1,
            detail: "",
          },
          {
            engine: Engine.WIREGUARD,
            status: EngineStatus.RUNNING,
            coreUptimeSeconds: 100n,
            usersServed: 1,
            detail: "",
          },
        ],
        usageQueueDepth: 3,
        leaseState: LeaseState.ONLINE,
        usersCutLocally: 0,
        loadAverage1m: 0.5,
        memoryUsedBytes: 1024n,
        memoryTotalBytes: 4096n,
      },
    },
  });
  agent.usage(
    7n,
    [{ userId: sub!.subscriptionId, downlinkBytes: 5n }],
    new Date(h.clock.now().getTime() - 20_000),
  );
  await agent.waitFor((m) => m.body?.$case === "usageAck");
});
afterAll(async () => {
  await h?.close();
});

describe("node health", () => {
  it("reports the session, the agent, its engines and the usage lag", async () => {
    await expect.poll(async () => (await h.cp.nodes.health(systemActor(), nodeId)).usage.queue_depth).toBe(3);
    const health = await h.cp.nodes.health(systemActor(), nodeId);
    expect(health).toMatchObject({
      status: "online",
      connected: true,
      collector_id: h.collector.collectorId,
      agent_version: "test-agent/1",
      boot_id: "boot-1",
      lease_state: "online",
      engines: [
        { engine: "xray", status: "running" },
        { engine: "wireguard", status: "running" },
      ],
      usage: { last_seq: "7" },
    });
    expect(health.capabilities).toEqual(
      expect.arrayContaining([expect.objectContaining({ engine: "xray", core: "xray" })]),
    );
    expect(health.usage.lag_seconds).toBeGreaterThanOrEqual(19);
    expect(BigInt(health.desired_revision)).toBeGreaterThan(0n);
    await expect.poll(() => gauge("nodeConnected")).toBe(1);
    await expect.poll(() => gauge("nodeQueueDepth")).toBe(3);
  });

  it("a connected node silent longer than NODE_DEGRADED_AFTER_SECONDS is degraded, in the API and the gauge", async () => {
    h.clock.advance(31_000);
    expect((await h.cp.nodes.health(systemActor(), nodeId)).status).toBe("degraded");
    await expect.poll(() => gauge("nodeDegraded"), { timeout: 5000 }).toBe(1);
    // Anything from the agent brings it back.
    agent.ack({ appliedRevision: (await h.cp.desired.revision(nodeId))!.revision });
    await expect
      .poll(async () => (await h.cp.nodes.health(systemActor(), nodeId)).applied_revision)
      .not.toBe("0");
    await expect.poll(() => gauge("nodeDegraded"), { timeout: 5000 }).toBe(0);
  });

  it("a closed session is offline", async () => {
    agent.close();
    await agent.done;
    await expect.poll(async () => (await h.cp.nodes.health(systemActor(), nodeId)).status).toBe("offline");
  });
});
