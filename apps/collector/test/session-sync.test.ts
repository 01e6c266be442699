import { systemActor } from "@vpnpanel/control";
import type { ControlMessage } from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "./support/harness";

// Desired-state sync on Hello, through a real mTLS session: an unknown revision gets a chunked
// snapshot, a node one step behind gets only the diff, an up-to-date node gets nothing.

let h: Harness;
let nodeId: string;
let identity: Awaited<ReturnType<Harness["enrollNode"]>>;
let subs: Awaited<ReturnType<Harness["seed"]>>;

const stateMessages = (ms: ControlMessage[]) =>
  ms.filter((m) => ["snapshot", "diff", "command"].includes(m.body?.$case ?? ""));

beforeAll(async () => {
  h = await createHarness({ collector: { session: { snapshotChunkUsers: 4 } } });
  subs = await h.seed({ count: 10 });
  nodeId = await h.createNode();
  identity = await h.enrollNode(nodeId);
});
afterAll(async () => {
  await h?.close();
});

async function revision(): Promise<bigint> {
  return (await h.cp.desired.revision(nodeId))!.revision;
}

describe("Hello → snapshot / diff / nothing", () => {
  it("a node that applied nothing gets the full desired state as a chunked snapshot, then Policy first", async () => {
    const agent = h.agent(identity);
    agent.hello(0n);
    await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last);
    expect(agent.messages[0]?.body?.$case).toBe("policy");
    const chunks = agent.of("snapshot");
    expect(chunks.map((c) => c.chunkIndex)).toEqual([0, 1, 2]);
    expect(chunks.map((c) => c.last)).toEqual([false, false, true]);
    expect(new Set(chunks.map((c) => c.revision)).size).toBe(1);
    expect(chunks[0]!.revision).toBe(await revision());
    expect(chunks[0]!.nodeConfig).toBeDefined();
    expect(chunks[1]!.nodeConfig).toBeUndefined();
    const users = chunks.flatMap((c) => c.users);
    expect(users.map((u) => u.userId).sort()).toEqual(subs.map((s) => s.subscriptionId).sort());
    const first = users[0]!;
    expect(first.email).toBe(first.userId);
    expect(first.xray?.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.xray?.trojanPassword.length).toBeGreaterThan(8);
    expect(first.wireguard?.publicKey).toMatch(/=$/);
    expect(first.lease?.remainingBytes).toBe(100n * 2n ** 30n);
    agent.close();
    await agent.done;
  });

  it("an up-to-date node gets nothing (and restarts nothing)", async () => {
    const agent = h.agent(identity);
    agent.hello(await revision());
    await agent.waitFor((m) => m.body?.$case === "policy");
    await new Promise((r) => setTimeout(r, 300));
    expect(stateMessages(agent.messages)).toEqual([]);
    agent.close();
    await agent.done;
  });

  it("a node one step behind gets only that change, as a diff", async () => {
    const before = await revision();
    // One change on the node: an admin takes one subscriber off it.
    await h.cp.nodes.unassign(systemActor(), nodeId, subs[3]!.subscriptionId);
    expect(await revision()).toBe(before + 1n);
    const agent = h.agent(identity);
    agent.hello(before);
    const m = await agent.waitFor((x) => x.body?.$case === "diff");
    if (m.body?.$case !== "diff") throw new Error("expected a diff");
    expect(m.body.value.fromRevision).toBe(before);
    expect(m.body.value.toRevision).toBe(before + 1n);
    expect(m.body.value.removals).toEqual([subs[3]!.subscriptionId]);
    expect(m.body.value.upserts).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(stateMessages(agent.messages)).toHaveLength(1);
    agent.close();
    await agent.done;
  });

  it("a revision the control plane never had (ahead, or from another install) gets a snapshot", async () => {
    const agent = h.agent(identity);
    agent.hello((await revision()) + 100n);
    const m = await agent.waitFor((x) => x.body?.$case === "snapshot" && x.body.value.last);
    if (m.body?.$case !== "snapshot") throw new Error("expected a snapshot");
    expect(agent.of("snapshot").flatMap((c) => c.users)).toHaveLength(9);
    agent.close();
    await agent.done;
  });

  it("a live change reaches a connected node as a command with an id and the next revision", async () => {
    const agent = h.agent(identity);
    const current = await revision();
    agent.hello(current);
    await agent.waitFor((m) => m.body?.$case === "policy");
    await h.cp.nodes.assign(systemActor(), nodeId, subs[3]!.subscriptionId, "primary");
    const m = await agent.waitFor((x) => x.body?.$case === "command");
    if (m.body?.$case !== "command") throw new Error("expected a command");
    expect(m.body.value.revision).toBe(current + 1n);
    expect(m.body.value.id).toBe(`${nodeId}/${current + 1n}`);
    expect(m.body.value.action?.$case).toBe("addUser");
    agent.ack({ commandIds: [m.body.value.id] });
    await expect
      .poll(async () => (await h.cp.nodes.health(systemActor(), nodeId)).applied_revision)
      .toBe(String(current + 1n));
    agent.close();
    await agent.done;
  });
});
