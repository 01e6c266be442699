import { type Ack, Engine } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import {
  agentFixture,
  createTestAgent,
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  waitFor,
} from "./support/agent-harness";
import { type FakeSession, snapshotMessages } from "./support/fake-collector";
import { createFakeEngine } from "./support/fake-engine";

const fx = agentFixture();

async function connected(extra: Parameters<typeof enrolledAgent>[2] = {}) {
  const t = await enrolledAgent(fx.collector, fx.state.dir, extra);
  fx.running.push(t);
  await waitFor(() => fx.collector.hellos.length >= 1, "hello");
  return t;
}

async function acked(count: number): Promise<Ack> {
  await waitFor(() => fx.collector.acks.length >= count, `ack #${count}`);
  return fx.collector.acks[count - 1] as Ack;
}

const users3 = () => [
  desiredUser("sub_1"),
  desiredUser("sub_2", { engines: ["xray"] }),
  desiredUser("sub_3", { engines: ["wireguard"], suspended: true }),
];

describe("snapshots", () => {
  it("a chunked snapshot is applied once complete, mapped per engine, and acked with its revision", async () => {
    const { xray, wireguard, agent } = await connected();
    expect(fx.collector.hellos[0]?.hello.appliedRevision).toBe(0n);
    const messages = snapshotMessages({
      revision: 7n,
      users: users3(),
      nodeConfig: NODE_CONFIG,
      chunkSize: 1,
    });
    expect(messages).toHaveLength(3);
    for (const m of messages) fx.session().send(m);
    const ack = await acked(1);
    expect(ack).toEqual({ commandIds: [], appliedRevision: 7n, failures: [] });
    expect(agent.appliedRevision()).toBe(7n);

    // The driver id is the subscription id (= the Xray email); suspended users are in no engine.
    expect(xray.users()).toEqual(["sub_1", "sub_2"]);
    expect(wireguard.users()).toEqual(["sub_1"]);
    expect(xray.user("sub_1")?.xray).toEqual({
      uuid: users3()[0]?.xray?.uuid,
      trojanPassword: "trojan-sub_1",
      shadowsocksPassword: "ss-sub_1",
    });
    expect(wireguard.user("sub_1")?.wireguard).toEqual({
      publicKey: "pk-sub_1",
      allowedIps: expect.any(Array),
    });
    expect(xray.log.starts).toBe(1);
    expect(wireguard.log.starts).toBe(1);
    // The Xray core was started by this snapshot: its users came with its config, none through the
    // API; WireGuard has no such path and added its peer.
    expect(xray.log.preloaded).toEqual(["sub_1", "sub_2"]);
    expect(xray.log.added).toEqual([]);
    expect(wireguard.log.added).toEqual(["sub_1"]);
  });

  it("an unchanged reconnect applies nothing: Hello carries the revision and no core is restarted", async () => {
    const { xray, wireguard } = await connected();
    for (const m of snapshotMessages({ revision: 3n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    const calls = [xray.log.calls.length, wireguard.log.calls.length];
    const added = [xray.log.added.length, wireguard.log.added.length];

    // The fx.collector has nothing newer: it answers the reconnect's Hello with the policy only.
    fx.session().drop();
    await waitFor(() => fx.collector.sessions.length === 2, "reconnect");
    expect(fx.collector.hellos.at(-1)?.hello.appliedRevision).toBe(3n);
    // Even a resent identical snapshot re-applies nothing and restarts nothing.
    for (const m of snapshotMessages({ revision: 3n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(2);
    expect([xray.log.added.length, wireguard.log.added.length]).toEqual(added);
    expect(xray.log.removed).toEqual([]);
    expect(xray.log.calls.length - calls[0]!).toBe(1); // one applySnapshot call that diffed to nothing
    expect(wireguard.log.calls.length - calls[1]!).toBe(1);
    expect(xray.log.starts).toBe(1);
    expect(xray.log.stops).toBe(0);
    expect(wireguard.log.starts).toBe(1);
  });

  it("an agent restart re-applies the stored state before connecting and reports the stored revision", async () => {
    const first = await connected();
    for (const m of snapshotMessages({ revision: 5n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    await first.agent.stop();
    fx.running.length = 0;
    // A new process: the Xray core is new (empty); WireGuard interfaces were adopted as they were.
    const xray = createFakeEngine("xray");
    const wireguard = first.wireguard;
    const wgAddedBefore = wireguard.log.added.length;
    fx.collector.onHello = () => undefined; // unreachable control plane: nothing answers
    const second = createTestAgent({
      collector: fx.collector,
      dir: fx.state.dir,
      engines: [xray, wireguard],
    });
    fx.running.push(second);
    await second.agent.start();
    expect(xray.users()).toEqual(["sub_1", "sub_2"]);
    // The new core starts with the stored users in its config; nothing is added one by one.
    expect(xray.log.preloaded).toEqual(["sub_1", "sub_2"]);
    expect(xray.log.added).toEqual([]);
    expect(wireguard.users()).toEqual(["sub_1"]);
    expect(wireguard.log.added.length).toBe(wgAddedBefore); // adopted peers are not re-added
    await waitFor(() => fx.collector.sessions.length === 2, "hello after restart");
    expect(fx.collector.hellos.at(-1)?.hello.appliedRevision).toBe(5n);
  });

  it("only a node-config change restarts an engine, and only the engine whose config changed", async () => {
    const { xray, wireguard } = await connected();
    for (const m of snapshotMessages({ revision: 1n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    // User changes: never a restart.
    fx.session().send({
      body: {
        $case: "diff",
        value: {
          fromRevision: 1n,
          toRevision: 2n,
          upserts: [desiredUser("sub_4")],
          removals: ["sub_2"],
          nodeConfig: undefined,
          usageCountedThroughSeq: 0n,
        },
      },
    });
    await acked(2);
    expect([xray.log.starts, xray.log.stops, wireguard.log.starts]).toEqual([1, 0, 1]);
    expect(xray.log.added).toEqual(["sub_4"]); // a running core: through the API
    // A new Xray inbound: the Xray core restarts and gets every user back; WireGuard is untouched.
    const nodeConfig = {
      ...NODE_CONFIG,
      xrayInboundsJson: JSON.stringify([
        { tag: "vless-in", port: 443, protocol: "vless" },
        { tag: "trojan-in", port: 8443, protocol: "trojan" },
      ]),
    };
    fx.session().send({
      body: {
        $case: "diff",
        value: {
          fromRevision: 2n,
          toRevision: 3n,
          upserts: [],
          removals: [],
          nodeConfig,
          usageCountedThroughSeq: 0n,
        },
      },
    });
    const ack = await acked(3);
    expect(ack.appliedRevision).toBe(3n);
    expect([xray.log.starts, xray.log.stops]).toEqual([2, 1]);
    expect(wireguard.log.starts).toBe(1);
    expect(xray.users()).toEqual(["sub_1", "sub_4"]);
    // The restarted core got every user from its config: no add after the start.
    expect(xray.log.preloaded).toEqual(["sub_1", "sub_2", "sub_1", "sub_4"]);
    expect(xray.log.added).toEqual(["sub_4"]);
    expect(wireguard.users()).toEqual(["sub_1", "sub_4"]);
  });
});

describe("diffs", () => {
  it("a diff on top of the applied revision is applied incrementally and acked with to_revision", async () => {
    const { xray, wireguard, agent } = await connected();
    for (const m of snapshotMessages({ revision: 10n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    const changed = desiredUser("sub_1", { uuid: "11111111-1111-4111-8111-111111111111" });
    fx.session().send({
      body: {
        $case: "diff",
        value: {
          fromRevision: 10n,
          toRevision: 12n,
          upserts: [changed, desiredUser("sub_3", { engines: ["wireguard"] })], // credentials change; resume
          removals: ["sub_2"],
          usageCountedThroughSeq: 0n,
        },
      },
    });
    expect(await acked(2)).toEqual({ commandIds: [], appliedRevision: 12n, failures: [] });
    expect(agent.appliedRevision()).toBe(12n);
    expect(xray.users()).toEqual(["sub_1"]);
    expect(xray.user("sub_1")?.xray?.uuid).toBe("11111111-1111-4111-8111-111111111111");
    expect(xray.log.updated).toEqual(["sub_1"]);
    expect(wireguard.users()).toEqual(["sub_1", "sub_3"]);
    expect(xray.log.calls.filter((c) => c.startsWith("snapshot"))).toHaveLength(1); // no full re-apply
  });

  it("a diff that does not start at the applied revision is not applied: the agent sends Hello again", async () => {
    const { xray } = await connected();
    for (const m of snapshotMessages({ revision: 10n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    fx.session().send({
      body: {
        $case: "diff",
        value: {
          fromRevision: 11n,
          toRevision: 12n,
          upserts: [desiredUser("sub_9")],
          removals: [],
          usageCountedThroughSeq: 0n,
        },
      },
    });
    // Hello #2 announced the WireGuard interface the snapshot created; #3 is the resync.
    await waitFor(() => fx.collector.hellos.length === 3, "resync hello");
    expect(fx.collector.hellos[2]?.hello.appliedRevision).toBe(10n);
    expect(fx.collector.sessions).toHaveLength(1); // same stream
    expect(xray.users()).not.toContain("sub_9");
  });

  it("resync requests are rate-limited, and a held-back one is sent by the next maintenance tick", async () => {
    const { agent, clock } = await connected();
    for (const m of snapshotMessages({ revision: 10n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    // The snapshot created the WireGuard interface, which the agent announces in a Hello (not rate-limited).
    await waitFor(() => fx.collector.hellos.length === 2, "announcing hello");
    const badDiff = (from: bigint) =>
      fx.session().send({
        body: {
          $case: "diff",
          value: {
            fromRevision: from,
            toRevision: from + 1n,
            upserts: [],
            removals: [],
            usageCountedThroughSeq: 0n,
          },
        },
      });
    badDiff(20n);
    badDiff(21n);
    // A marker processed after both diffs (messages are handled in order).
    fx.collector.policy = { ...fx.collector.policy, healthIntervalSeconds: 77 };
    fx.session().send({ body: { $case: "policy", value: fx.collector.policy } });
    await waitFor(() => agent.policy().healthIntervalSeconds === 77, "marker");
    await waitFor(() => fx.collector.hellos.length === 3, "first resync hello");
    expect(fx.collector.hellos).toHaveLength(3);
    await agent.tickMaintenance();
    expect(fx.collector.hellos).toHaveLength(3); // still inside the rate limit
    clock.advance(5_000);
    await agent.tickMaintenance();
    await waitFor(() => fx.collector.hellos.length === 4, "held-back resync");
    await agent.tickMaintenance();
    await agent.idle();
    expect(fx.collector.hellos).toHaveLength(4); // owed once, sent once
  });

  it("a snapshot whose chunks arrive out of order is dropped and requested again", async () => {
    const { xray } = await connected();
    const [c0, c1, c2] = snapshotMessages({
      revision: 4n,
      users: users3(),
      nodeConfig: NODE_CONFIG,
      chunkSize: 1,
    });
    fx.session().send(c0!);
    fx.session().send(c2!);
    await waitFor(() => fx.collector.hellos.length === 2, "resync hello");
    expect(xray.log.starts).toBe(0);
    for (const m of [c0!, c1!, c2!]) fx.session().send(m);
    expect((await acked(1)).appliedRevision).toBe(4n);
  });
});

describe("commands", () => {
  it("add, suspend, resume and remove are applied in order and acked with their ids and revisions", async () => {
    const { xray, wireguard, agent } = await connected();
    for (const m of snapshotMessages({ revision: 20n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    xray.traffic("sub_1", 10, 20);
    const send = (
      id: string,
      revision: bigint,
      action: NonNullable<Parameters<FakeSession["send"]>[0]["body"]>,
    ) => fx.session().send({ body: { $case: "command", value: { id, revision, action: action as never } } });
    send("cmd-a", 21n, { $case: "addUser", value: desiredUser("sub_5") } as never);
    send("cmd-b", 22n, { $case: "suspendUser", value: "sub_1" } as never);
    send("cmd-c", 23n, { $case: "resumeUser", value: "sub_3" } as never);
    send("cmd-d", 24n, { $case: "removeUser", value: "sub_2" } as never);
    await acked(5);
    expect(fx.collector.acks.slice(1).map((a) => [a.commandIds, a.appliedRevision, a.failures])).toEqual([
      [["cmd-a"], 21n, []],
      [["cmd-b"], 22n, []],
      [["cmd-c"], 23n, []],
      [["cmd-d"], 24n, []],
    ]);
    expect(agent.appliedRevision()).toBe(24n);
    expect(xray.users()).toEqual(["sub_5"]);
    expect(wireguard.users()).toEqual(["sub_3", "sub_5"]);
    // The suspension took a final reading first: those bytes were queued and delivered, not lost.
    await waitFor(() => fx.collector.totals().has("sub_1"), "final reading delivered");
    expect(fx.collector.totals().get("sub_1")).toEqual({ up: 10, down: 20 });
  });

  it("a command already covered is acked without a revision; one with a gap triggers a resync", async () => {
    const { xray } = await connected();
    for (const m of snapshotMessages({ revision: 30n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    fx.session().send({
      body: {
        $case: "command",
        value: { id: "old", revision: 29n, action: { $case: "removeUser", value: "sub_1" } },
      },
    });
    expect(await acked(2)).toEqual({ commandIds: ["old"], appliedRevision: 0n, failures: [] });
    expect(xray.users()).toContain("sub_1");
    fx.session().send({
      body: {
        $case: "command",
        value: { id: "gap", revision: 32n, action: { $case: "removeUser", value: "sub_1" } },
      },
    });
    await waitFor(() => fx.collector.hellos.length === 2, "resync hello");
    expect(fx.collector.acks).toHaveLength(2);
    expect(xray.users()).toContain("sub_1");
  });

  it("a command for an unknown user still moves the revision and is acked with a failure", async () => {
    await connected();
    for (const m of snapshotMessages({ revision: 40n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    fx.session().send({
      body: {
        $case: "command",
        value: { id: "x", revision: 41n, action: { $case: "suspendUser", value: "nobody" } },
      },
    });
    expect(await acked(2)).toEqual({
      commandIds: ["x"],
      appliedRevision: 41n,
      failures: [{ commandId: "x", userId: "nobody", message: "unknown user" }],
    });
  });

  it("Hello reports engines, features and WireGuard interfaces", async () => {
    await connected();
    for (const m of snapshotMessages({ revision: 1n, users: users3(), nodeConfig: NODE_CONFIG }))
      fx.session().send(m);
    await acked(1);
    fx.session().drop();
    await waitFor(() => fx.collector.sessions.length === 2, "reconnect");
    const hello = fx.collector.hellos.at(-1)?.hello;
    expect(hello?.engines.map((e) => [e.engine, e.core, e.features])).toEqual([
      [Engine.XRAY, "xray", ["xtls_flow"]],
      [Engine.WIREGUARD, "wireguard-go", []],
    ]);
    expect(hello?.wireguardInterfaces).toEqual([
      { name: "wg0", publicKey: "fake-public-key", listenPort: 51820, peerCount: 1 },
    ]);
    expect(hello?.bootId).toBe("boot-test");
  });
});
