import { LeaseState } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import {
  agentFixture,
  createTestAgent,
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  sleepControl,
  type TestAgent,
  waitFor,
} from "./support/agent-harness";
import { snapshotMessages } from "./support/fake-collector";
import { createFakeEngine } from "./support/fake-engine";

const fx = agentFixture();

const lease = (remainingBytes: bigint, expiresAt?: Date) => ({ remainingBytes, expiresAt });

/** Connected agent serving sub_a (1000-byte lease) and sub_b (no lease); reconnect sleeps are held. */
async function leased(users = [desiredUser("sub_a", { lease: lease(1000n) }), desiredUser("sub_b")]) {
  const t = await enrolledAgent(fx.collector, fx.state.dir, { sleeps: sleepControl("held") });
  fx.running.push(t);
  await waitFor(() => fx.collector.hellos.length === 1, "hello");
  for (const m of snapshotMessages({ revision: 1n, users, nodeConfig: NODE_CONFIG })) fx.session().send(m);
  await waitFor(() => fx.collector.acks.length === 1, "snapshot ack");
  return t;
}

async function goOffline(t: TestAgent): Promise<void> {
  await fx.collector.stopListener(0);
  await waitFor(() => t.agent.sessionState() !== "open", "session lost");
}

async function comeBack(t: TestAgent): Promise<void> {
  const hellos = fx.collector.hellos.length;
  await fx.collector.startListener(0);
  t.sleeps.release();
  // Dial attempts that fail while the listener was down park in a held sleep; keep releasing.
  await waitFor(() => {
    t.sleeps.release();
    return fx.collector.hellos.length > hellos;
  }, "reconnect");
}

describe("offline lease", () => {
  it("while the control plane is unreachable the node keeps serving, cuts a user whose budget ran out, and reports it all when the link returns", async () => {
    const t = await leased();
    const { agent, xray, wireguard } = t;
    xray.traffic("sub_a", 100, 200); // 300 of 1000
    await agent.tickUsage();
    await goOffline(t);

    xray.traffic("sub_a", 200, 200); // 700
    wireguard.traffic("sub_b", 5_000, 5_000); // no lease: never limited locally
    await agent.tickUsage();
    expect(xray.users()).toEqual(["sub_a", "sub_b"]);
    expect(wireguard.users()).toEqual(["sub_a", "sub_b"]);

    wireguard.traffic("sub_a", 150, 150); // 1000: budget spent
    xray.traffic("sub_a", 7, 0); // in flight when the cut happens: taken by the final reading
    await agent.tickUsage();
    expect(xray.users()).toEqual(["sub_b"]);
    expect(wireguard.users()).toEqual(["sub_b"]);
    expect(agent.leases().isCut("sub_a")).toBe(true);
    const queued = agent
      .queue()
      .pending()
      .flatMap((b) => b.deltas)
      .filter((d) => d.userId === "sub_a")
      .reduce((s, d) => s + d.up + d.down, 0);
    expect(queued).toBe(400 + 300 + 7); // everything since going offline, final reading included

    await comeBack(t);
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "backlog delivered");
    expect(fx.collector.totals().get("sub_a")).toEqual({ up: 100 + 200 + 150 + 7, down: 200 + 200 + 150 });
    expect(fx.collector.totals().get("sub_b")).toEqual({ up: 5_000, down: 5_000 });
    await agent.tickHealth();
    await waitFor(() => fx.collector.health.length === 1, "health");
    expect(fx.collector.health[0]?.leaseState).toBe(LeaseState.OFFLINE);
    expect(fx.collector.health[0]?.usersCutLocally).toBe(1);

    // Coming back online does not undo the cut; a newer lease with budget does.
    await agent.tickMaintenance();
    expect(xray.users()).toEqual(["sub_b"]);
    const lastSeq = BigInt(agent.queue().metrics().nextSeq - 1);
    fx.session().send({
      body: {
        $case: "leaseUpdate",
        value: { leases: [{ userId: "sub_a", lease: lease(10_000n) }], usageCountedThroughSeq: lastSeq },
      },
    });
    await waitFor(() => xray.users().includes("sub_a"), "restored by the new lease");
    expect(wireguard.users()).toEqual(["sub_a", "sub_b"]);
    await agent.tickHealth();
    await waitFor(() => fx.collector.health.length === 2, "second health");
    expect(fx.collector.health[1]?.leaseState).toBe(LeaseState.ONLINE);
  });

  it("an expired lease cuts the user at the next check while offline (injected clock, no waiting)", async () => {
    const t = await enrolledAgent(fx.collector, fx.state.dir, { sleeps: sleepControl("held") });
    fx.running.push(t);
    await waitFor(() => fx.collector.hellos.length === 1, "hello");
    const expiresAt = new Date(t.clock.now() + 60_000);
    for (const m of snapshotMessages({
      revision: 1n,
      users: [desiredUser("sub_a", { lease: lease(-1n, expiresAt) }), desiredUser("sub_b")],
      nodeConfig: NODE_CONFIG,
    }))
      fx.session().send(m);
    await waitFor(() => fx.collector.acks.length === 1, "ack");
    await goOffline(t);
    await t.agent.tickMaintenance();
    expect(t.xray.users()).toEqual(["sub_a", "sub_b"]);
    t.clock.advance(60_000);
    await t.agent.tickMaintenance();
    expect(t.xray.users()).toEqual(["sub_b"]);
    expect(t.wireguard.users()).toEqual(["sub_b"]);
  });

  it("online, leases are enforced locally only when the policy asks for it", async () => {
    const t = await leased();
    t.xray.traffic("sub_a", 2_000, 0);
    await t.agent.tickUsage();
    expect(t.xray.users()).toEqual(["sub_a", "sub_b"]); // the control plane cuts it, not the agent

    fx.session().send({
      body: { $case: "policy", value: { ...fx.collector.policy, enforceLeasesOnline: true } },
    });
    await t.agent.idle();
    await waitFor(() => t.agent.policy().enforceLeasesOnline, "policy");
    await t.agent.tickUsage();
    expect(t.xray.users()).toEqual(["sub_b"]);
  });

  it("only usage after the lease's usage_counted_through_seq is charged against it", async () => {
    const t = await leased([desiredUser("sub_a", { lease: lease(1_000_000n) })]);
    t.xray.traffic("sub_a", 400, 400); // counted by the control plane below
    await t.agent.tickUsage();
    await waitFor(() => t.agent.queue().metrics().pendingBatches === 0, "acked");
    const through = BigInt(t.agent.queue().metrics().nextSeq - 1);
    fx.session().send({
      body: {
        $case: "leaseUpdate",
        value: { leases: [{ userId: "sub_a", lease: lease(500n) }], usageCountedThroughSeq: through },
      },
    });
    await t.agent.idle();
    await goOffline(t);
    t.xray.traffic("sub_a", 200, 200); // 400 of 500
    await t.agent.tickUsage();
    expect(t.xray.users()).toEqual(["sub_a"]);
    t.xray.traffic("sub_a", 100, 0); // 500 of 500
    await t.agent.tickUsage();
    expect(t.xray.users()).toEqual([]);
  });

  it("a cut survives an agent restart: the stored state is re-applied without the cut user", async () => {
    const t = await leased();
    await goOffline(t);
    t.xray.traffic("sub_a", 1_000, 0);
    await t.agent.tickUsage();
    expect(t.xray.users()).toEqual(["sub_b"]);
    t.sleeps.release();
    await t.agent.stop();
    fx.running.length = 0;

    const xray = createFakeEngine("xray");
    const next = createTestAgent({
      collector: fx.collector,
      dir: fx.state.dir,
      engines: [xray, t.wireguard],
      sleeps: sleepControl("held"),
    });
    fx.running.push(next);
    await next.agent.start();
    expect(xray.users()).toEqual(["sub_b"]);
    expect(t.wireguard.users()).toEqual(["sub_b"]);
    expect(next.agent.leases().isCut("sub_a")).toBe(true);
  });

  it("after a restart while offline, unacked usage still counts against the lease", async () => {
    const t = await leased();
    await goOffline(t);
    t.xray.traffic("sub_a", 600, 0);
    await t.agent.tickUsage();
    t.sleeps.release();
    await t.agent.stop();
    fx.running.length = 0;

    const xray = createFakeEngine("xray");
    const next = createTestAgent({
      collector: fx.collector,
      dir: fx.state.dir,
      engines: [xray, t.wireguard],
      sleeps: sleepControl("held"),
    });
    fx.running.push(next);
    await next.agent.start();
    expect(xray.users()).toEqual(["sub_a", "sub_b"]);
    xray.traffic("sub_a", 400, 0); // 600 before the restart + 400 = 1000
    await next.agent.tickUsage();
    expect(xray.users()).toEqual(["sub_b"]);
  });
});
