import { CloseReason, EngineStatus, LeaseState } from "@vpnpanel/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startAgentHttpServer } from "../src/reporting/http-server";
import {
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  type TestAgent,
  tempStateDir,
  waitFor,
} from "./support/agent-harness";
import {
  type FakeCollector,
  freeAddress,
  snapshotMessages,
  startFakeCollector,
} from "./support/fake-collector";

let collector: FakeCollector;
let state: Awaited<ReturnType<typeof tempStateDir>>;
const running: TestAgent[] = [];

afterEach(async () => {
  for (const t of running.splice(0)) {
    t.sleeps.release();
    await t.agent.stop().catch(() => undefined);
  }
  await collector.close();
  await state.remove();
});

type Attempt = { address: string } | { waitMs: number; next: string };

describe("reconnecting", () => {
  beforeEach(async () => {
    collector = await startFakeCollector();
    state = await tempStateDir();
  });

  it("rotates through the collector addresses with exponential backoff and jitter until one answers", async () => {
    const [dead1, dead2] = [await freeAddress(), await freeAddress()];
    const live = collector.addresses[0] as string;
    const attempts: Attempt[] = [];
    const t = await enrolledAgent(collector, state.dir, {
      addresses: [dead1, dead2, live],
      onAttempt: (a) => attempts.push(a),
      random: () => 0.5, // equal jitter: half fixed + half × random → 0.75 × nominal
    });
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello on the live address");
    expect(attempts).toEqual([
      { address: dead1 },
      { waitMs: 75, next: dead2 }, // nominal 100 ms
      { address: dead2 },
      { waitMs: 150, next: live }, // nominal 200 ms
      { address: live },
    ]);
    expect(t.sleeps.waits).toEqual([75, 150]);

    // An established session that drops resets the count: the next round starts at the base delay again.
    attempts.length = 0;
    collector.active()?.drop();
    await waitFor(() => collector.hellos.length === 2, "second hello");
    expect(attempts).toEqual([
      { waitMs: 75, next: dead1 },
      { address: dead1 },
      { waitMs: 150, next: dead2 },
      { address: dead2 },
      { waitMs: 300, next: live },
      { address: live },
    ]);
  });

  it("the delay is capped and jittered within [half, full] of the nominal delay", async () => {
    const dead = await freeAddress();
    const attempts: Attempt[] = [];
    let r = 0;
    const randoms = [0, 0.9999, 0.5, 0, 0.9999, 0.5, 0, 0.9999];
    const t = await enrolledAgent(collector, state.dir, {
      addresses: [dead],
      onAttempt: (a) => attempts.push(a),
      random: () => randoms[r++ % randoms.length] as number,
    });
    running.push(t);
    await waitFor(() => t.sleeps.waits.length >= 8, "eight waits");
    // Nominal: 100, 200, 400, 800, 1600 (cap), 1600, 1600, 1600.
    expect(t.sleeps.waits.slice(0, 8)).toEqual([50, 200, 300, 400, 1600, 1200, 800, 1600]);
  });

  it("Close(DRAINING) moves the agent to the next collector at once", async () => {
    await collector.close();
    collector = await startFakeCollector({ listeners: 2 });
    const t = await enrolledAgent(collector, state.dir);
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello");
    expect(collector.hellos[0]?.address).toBe(collector.addresses[0]);
    collector.active()?.close(CloseReason.DRAINING);
    await waitFor(() => collector.hellos.length === 2, "hello elsewhere");
    expect(collector.hellos[1]?.address).toBe(collector.addresses[1]);
  });

  it("Close(REVOKED) stops reconnecting for good, and the node keeps serving its users", async () => {
    const attempts: Attempt[] = [];
    const t = await enrolledAgent(collector, state.dir, { onAttempt: (a) => attempts.push(a) });
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello");
    for (const m of snapshotMessages({
      revision: 1n,
      users: [desiredUser("sub_a")],
      nodeConfig: NODE_CONFIG,
    }))
      collector.active()?.send(m);
    await waitFor(() => collector.acks.length === 1, "ack");
    collector.active()?.close(CloseReason.REVOKED);
    await waitFor(() => t.agent.sessionState() === "revoked", "revoked");
    const seen = attempts.length;
    t.xray.traffic("sub_a", 10, 10);
    await t.agent.tickUsage();
    await t.agent.tickMaintenance();
    expect(t.xray.users()).toEqual(["sub_a"]);
    expect(t.agent.queue().metrics().pendingBatches).toBe(1); // kept on disk
    expect(attempts.length).toBe(seen);
    expect(collector.sessions).toHaveLength(1);
  });
});

describe("health and metrics", () => {
  beforeEach(async () => {
    collector = await startFakeCollector();
    state = await tempStateDir();
  });

  it("sends a health report with engine status, queue depth and lease state", async () => {
    const t = await enrolledAgent(collector, state.dir);
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello");
    for (const m of snapshotMessages({
      revision: 1n,
      users: [desiredUser("sub_a")],
      nodeConfig: NODE_CONFIG,
    }))
      collector.active()?.send(m);
    await waitFor(() => collector.acks.length === 1, "ack");
    collector.autoAck = false;
    t.xray.traffic("sub_a", 1, 1);
    await t.agent.tickUsage();
    await t.agent.tickHealth();
    await waitFor(() => collector.health.length === 1, "health");
    const report = collector.health[0];
    expect(report?.engines.map((e) => [e.status, e.usersServed])).toEqual([
      [EngineStatus.RUNNING, 1],
      [EngineStatus.RUNNING, 1],
    ]);
    expect(report?.usageQueueDepth).toBe(1);
    expect(report?.oldestPendingUsage).toBeInstanceOf(Date);
    // Offline before the first session: reported once, then online.
    expect(report?.leaseState).toBe(LeaseState.OFFLINE);
    await t.agent.tickHealth();
    await waitFor(() => collector.health.length === 2, "second health");
    expect(collector.health[1]?.leaseState).toBe(LeaseState.ONLINE);
  });

  it("serves /metrics (queue, session, apply durations) and /health on loopback", async () => {
    const t = await enrolledAgent(collector, state.dir);
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello");
    for (const m of snapshotMessages({
      revision: 3n,
      users: [desiredUser("sub_a")],
      nodeConfig: NODE_CONFIG,
    }))
      collector.active()?.send(m);
    await waitFor(() => collector.acks.length === 1, "ack");
    const http = await startAgentHttpServer({
      host: "127.0.0.1",
      port: 0,
      registry: t.agent.metrics().registry,
      health: t.agent.health,
    });
    try {
      const metrics = await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
      expect(metrics).toMatch(/^agent_usage_queue_pending_batches 0$/m);
      expect(metrics).toMatch(/^agent_session_state\{state="open"\} 1$/m);
      expect(metrics).toMatch(/^agent_applied_revision 3$/m);
      expect(metrics).toMatch(/^agent_apply_duration_seconds_count\{kind="snapshot"\} 1$/m);
      expect(metrics).toMatch(/^agent_engine_users\{engine="xray"\} 1$/m);
      const health = (await (await fetch(`http://127.0.0.1:${http.port}/health`)).json()) as Record<
        string,
        unknown
      >;
      expect(health).toMatchObject({
        status: "ok",
        session: "open",
        appliedRevision: "3",
        nodeId: collector.nodeId,
      });
      expect((await fetch(`http://127.0.0.1:${http.port}/nope`)).status).toBe(404);
    } finally {
      await http.close();
    }
  });
});

describe("announcing the node", () => {
  beforeEach(async () => {
    collector = await startFakeCollector();
    state = await tempStateDir();
  });

  it("a Hello announces the WireGuard interface the first node config created; peer changes do not", async () => {
    const t = await enrolledAgent(collector, state.dir);
    running.push(t);
    await waitFor(() => collector.hellos.length === 1, "hello");
    // Enrolled a moment ago: no node config yet, so no interface (and no key) to tell clients about.
    expect(collector.hellos[0]?.hello.wireguardInterfaces).toEqual([]);
    for (const m of snapshotMessages({
      revision: 1n,
      users: [desiredUser("sub_a")],
      nodeConfig: NODE_CONFIG,
    }))
      collector.active()?.send(m);
    await waitFor(() => collector.hellos.length === 2, "announcing hello");
    expect(collector.hellos[1]?.hello).toMatchObject({
      appliedRevision: 1n,
      wireguardInterfaces: [{ name: "wg0", publicKey: "fake-public-key", listenPort: 51820 }],
    });
    collector.active()?.send({
      body: {
        $case: "command",
        value: { id: "add-b", revision: 2n, action: { $case: "addUser", value: desiredUser("sub_b") } },
      },
    });
    await waitFor(() => collector.acks.some((a) => a.commandIds.includes("add-b")), "command ack");
    await t.agent.idle();
    expect(collector.hellos).toHaveLength(2);
  });
});
