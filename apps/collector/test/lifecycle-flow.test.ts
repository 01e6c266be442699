import { systemActor } from "@vpnpanel/control";
import type { ControlMessage } from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestAgent } from "./support/agent";
import { createHarness, type Harness } from "./support/harness";

// The subscriber lifecycle services (issue 3) drive the nodes: a user created, disabled, enabled,
// renewed and deleted through them reaches a connected agent as commands with real credentials —
// the outbox between them, the "nodes" consumer in the collector.

let h: Harness;
let agent: TestAgent;
const sys = systemActor();

const commandFor = (kind: string, sub: string, from = 0) =>
  agent.waitFor(
    (m: ControlMessage) =>
      m.body?.$case === "command" &&
      m.body.value.action?.$case === kind &&
      (typeof m.body.value.action.value === "string"
        ? m.body.value.action.value === sub
        : m.body.value.action.value.userId === sub),
    { from, timeoutMs: 15_000 },
  );

beforeAll(async () => {
  h = await createHarness();
  const nodeId = await h.createNode({
    wireguard: { listenPort: 51820, addresses: ["10.80.0.1/12"] },
  });
  agent = h.agent(await h.enrollNode(nodeId));
  agent.hello(0n);
  await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last);
});
afterAll(async () => {
  await h?.close();
});

describe("lifecycle → node commands", () => {
  it("a created user arrives with decrypted credentials, a WireGuard address and its lease", async () => {
    const user = await h.cp.users.create(sys, h.tenantId, {
      username: "alice",
      quotaBytes: 10n * 2n ** 30n,
      durationSeconds: 30 * 86_400,
    });
    const sub = user.subscription.id;
    const m = await commandFor("addUser", sub);
    if (m.body?.$case !== "command" || m.body.value.action?.$case !== "addUser") throw new Error("x");
    const u = m.body.value.action.value;
    expect(u.xray?.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(u.xray?.trojanPassword.length).toBeGreaterThanOrEqual(16);
    expect(u.wireguard?.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(u.wireguard?.allowedIps[0]).toMatch(/^10\.(8[0-9]|9[0-5])\.\d+\.\d+\/32$/);
    expect(u.lease?.remainingBytes).toBe(10n * 2n ** 30n);
    expect(u.suspended).toBe(false);

    let from = agent.messages.length;
    await h.cp.subscriptions.disable(sys, user.id);
    await commandFor("suspendUser", sub, from);

    from = agent.messages.length;
    await h.cp.subscriptions.enable(sys, user.id);
    await commandFor("addUser", sub, from);

    from = agent.messages.length;
    await h.cp.users.remove(sys, user.id);
    await commandFor("removeUser", sub, from);
  });
});
