import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageBatch } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import { scanFrames } from "../src/queue/framing";
import { decodeRecord } from "../src/queue/records";
import {
  agentFixture,
  createTestAgent,
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  waitFor,
} from "./support/agent-harness";
import { snapshotMessages } from "./support/fake-collector";
import { createFakeEngine, type FakeEngine } from "./support/fake-engine";

const fx = agentFixture();

const USERS = ["sub_a", "sub_b", "sub_c"];

/** An enrolled, connected agent serving USERS on both engines. */
async function serving(extra: Parameters<typeof enrolledAgent>[2] = {}) {
  const t = await enrolledAgent(fx.collector, fx.state.dir, extra);
  fx.running.push(t);
  await waitFor(() => fx.collector.hellos.length >= 1, "hello");
  const acks = fx.collector.acks.length;
  for (const m of snapshotMessages({
    revision: 1n,
    users: USERS.map((u) => desiredUser(u)),
    nodeConfig: NODE_CONFIG,
  }))
    fx.session().send(m);
  await waitFor(() => fx.collector.acks.length > acks, "snapshot ack");
  return t;
}

/** The ground truth: every byte the fake cores counted, across core lives and agent lives. */
function truth(...engines: FakeEngine[]): Map<string, { up: number; down: number }> {
  const out = new Map<string, { up: number; down: number }>();
  for (const e of engines) {
    for (const [id, c] of e.lifetime()) {
      const t = out.get(id) ?? { up: 0, down: 0 };
      t.up += c.up;
      t.down += c.down;
      out.set(id, t);
    }
  }
  return out;
}

const seqs = () => fx.collector.usageLog.map((b) => Number(b.seq));

describe("usage reporting", () => {
  it("every batch is on disk before it is sent, and batches go out in seq order", async () => {
    const { agent, xray, wireguard } = await serving();
    const onDiskAtSend: boolean[] = [];
    fx.collector.onUsage = (batch) => {
      const { records } = scanFrames(readFileSync(join(fx.state.dir, "usage-queue.log")));
      onDiskAtSend.push(
        records
          .map(decodeRecord)
          .some((r) => (r.t === "batch" || r.t === "merge") && r.seq === Number(batch.seq)),
      );
    };
    for (let i = 1; i <= 3; i++) {
      xray.traffic("sub_a", 100 * i, 1000 * i);
      wireguard.traffic("sub_b", 7 * i, 70 * i);
      await agent.tickUsage();
    }
    // One batch per engine per sample.
    await waitFor(() => fx.collector.usageLog.length === 6, "six batches");
    expect(seqs()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(onDiskAtSend).toEqual([true, true, true, true, true, true]);
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "acks");
    expect(Object.fromEntries(fx.collector.totals())).toEqual(Object.fromEntries(truth(xray, wireguard)));
  });

  it("a batch is dropped only after the UsageAck for its own seq (acks are not cumulative)", async () => {
    const { agent, xray } = await serving();
    fx.collector.autoAck = false;
    xray.traffic("sub_a", 1, 1);
    await agent.tickUsage();
    xray.traffic("sub_a", 2, 2);
    await agent.tickUsage();
    await waitFor(() => fx.collector.usageLog.length === 2, "two batches");
    expect(
      agent
        .queue()
        .pending()
        .map((b) => b.seq),
    ).toEqual([1, 2]);
    fx.session().send({ body: { $case: "usageAck", value: { seq: 2n, duplicate: false } } });
    await waitFor(() => agent.queue().pending().length === 1, "ack of 2");
    expect(
      agent
        .queue()
        .pending()
        .map((b) => b.seq),
    ).toEqual([1]);
    fx.session().send({ body: { $case: "usageAck", value: { seq: 1n, duplicate: false } } });
    await waitFor(() => agent.queue().pending().length === 0, "ack of 1");
  });

  it("after a dropped stream every unacked batch is resent, byte for byte, in seq order; the collector counts it once", async () => {
    const { agent, xray, wireguard } = await serving();
    fx.collector.autoAck = false; // the collector commits, but its acks are lost with the link
    for (let i = 0; i < 3; i++) {
      xray.traffic(USERS[i] as string, 10, 100);
      await agent.tickUsage();
    }
    await waitFor(() => fx.collector.usageLog.length === 3, "three batches");
    const firstSend = fx.collector.usageLog.map((b) =>
      Buffer.from(UsageBatch.encode(b).finish()).toString("hex"),
    );
    fx.collector.autoAck = true;
    fx.session().drop();
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "resent and acked");
    expect(seqs()).toEqual([1, 2, 3, 1, 2, 3]);
    const resend = fx.collector.usageLog
      .slice(3)
      .map((b) => Buffer.from(UsageBatch.encode(b).finish()).toString("hex"));
    expect(resend).toEqual(firstSend);
    expect(fx.collector.duplicates).toBe(3);
    wireguard.traffic("sub_c", 5, 5);
    await agent.tickUsage();
    await waitFor(() => fx.collector.stored.size === 4, "fourth batch");
    expect(Object.fromEntries(fx.collector.totals())).toEqual(Object.fromEntries(truth(xray, wireguard)));
  });

  it("after an agent restart the pending batches are resent under the same seqs and numbering continues", async () => {
    const first = await serving();
    fx.collector.autoAck = false;
    first.xray.traffic("sub_a", 300, 3000);
    await first.agent.tickUsage();
    first.wireguard.traffic("sub_b", 40, 400);
    await first.agent.tickUsage();
    await waitFor(() => fx.collector.usageLog.length === 2, "two batches");
    // The fx.collector stored only the first (the second was lost in flight), and acked neither.
    fx.collector.stored.delete(2);
    await first.agent.stop();
    fx.running.length = 0;

    fx.collector.autoAck = true;
    const xray = createFakeEngine("xray"); // a new core: its counters start from zero
    const second = createTestAgent({
      collector: fx.collector,
      dir: fx.state.dir,
      engines: [xray, first.wireguard],
    });
    fx.running.push(second);
    await second.agent.start();
    await waitFor(() => second.agent.queue().metrics().pendingBatches === 0, "resent after restart");
    expect(seqs().slice(2)).toEqual([1, 2]);
    expect(fx.collector.duplicates).toBe(1);
    xray.traffic("sub_a", 5, 50);
    first.wireguard.traffic("sub_b", 1, 10);
    await second.agent.tickUsage();
    await waitFor(
      () => second.agent.queue().metrics().pendingBatches === 0 && fx.collector.stored.size === 4,
      "new batches",
    );
    expect(seqs().slice(4)).toEqual([3, 4]);
    expect(Object.fromEntries(fx.collector.totals())).toEqual(
      Object.fromEntries(truth(first.xray, xray, first.wireguard)),
    );
  });

  it("a graceful stop takes a final reading into the queue and waits for its ack", async () => {
    const t = await serving({ shutdownGraceMs: 5_000 });
    t.xray.traffic("sub_c", 77, 770);
    await t.agent.stop();
    fx.running.length = 0;
    expect(fx.collector.totals().get("sub_c")).toEqual({ up: 77, down: 770 });
    expect(t.xray.log.stops).toBe(1); // Xray-like core: stopped with the agent
  });

  it("Policy.last_stored_usage_seq moves a lost queue's numbering above what the collector stored", async () => {
    fx.collector.policy = { ...fx.collector.policy, lastStoredUsageSeq: 500n };
    const { agent, xray } = await serving();
    xray.traffic("sub_a", 1, 1);
    await agent.tickUsage();
    await waitFor(() => fx.collector.usageLog.length === 1, "batch");
    expect(seqs()).toEqual([501]);
  });

  it("Policy.max_samples_per_batch splits a sample into several batches", async () => {
    fx.collector.policy = { ...fx.collector.policy, maxSamplesPerBatch: 2 };
    const { agent, xray, wireguard } = await serving();
    for (const u of USERS) {
      xray.traffic(u, 1, 1);
      wireguard.traffic(u, 1, 1);
    }
    await agent.tickUsage();
    await waitFor(
      () => agent.queue().metrics().pendingBatches === 0 && fx.collector.usageLog.length === 4,
      "batches",
    );
    expect(fx.collector.usageLog.map((b) => b.samples.length)).toEqual([2, 1, 2, 1]);
  });

  it("a core restart (counters back to zero) and a removal's final reading are each counted exactly once", async () => {
    const { agent, xray, wireguard } = await serving();
    xray.traffic("sub_a", 1000, 1000);
    await agent.tickUsage();
    xray.traffic("sub_a", 500, 0); // not sampled before the crash: lost with the core, as on a real core
    const lostInCrash = 500;
    xray.crash();
    xray.traffic("sub_a", 20, 30);
    await agent.tickUsage();
    xray.traffic("sub_b", 9, 9);
    fx.session().send({
      body: {
        $case: "command",
        value: { id: "rm", revision: 2n, action: { $case: "removeUser", value: "sub_b" } },
      },
    });
    await waitFor(() => fx.collector.acks.some((a) => a.commandIds.includes("rm")), "remove ack");
    await agent.tickUsage();
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "all acked");
    const totals = fx.collector.totals();
    expect(totals.get("sub_a")).toEqual({ up: 1000 + 20, down: 1000 + 30 });
    expect(truth(xray).get("sub_a")?.up).toBe(1000 + 20 + lostInCrash);
    expect(totals.get("sub_b")).toEqual({ up: 9, down: 9 });
    expect(wireguard.users()).toEqual(["sub_a", "sub_c"]);
  });
});
