import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { certificateInfo } from "@vpnpanel/pki";
import { CloseReason } from "@vpnpanel/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IDENTITY_FILE } from "../src/identity/identity-store";
import {
  createTestAgent,
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  type TestAgent,
  tempStateDir,
  waitFor,
} from "./support/agent-harness";
import { type FakeCollector, snapshotMessages, startFakeCollector } from "./support/fake-collector";

let collector: FakeCollector;
let state: Awaited<ReturnType<typeof tempStateDir>>;
const running: TestAgent[] = [];

beforeEach(async () => {
  collector = await startFakeCollector();
  state = await tempStateDir();
});
afterEach(async () => {
  for (const t of running.splice(0)) await t.agent.stop().catch(() => undefined);
  await collector.close();
  await state.remove();
});

async function track<T extends TestAgent>(t: Promise<T>): Promise<T> {
  const value = await t;
  running.push(value);
  return value;
}

describe("enrollment", () => {
  it("first start enrolls with the token: key made locally, credentials stored 0600, node id from the certificate", async () => {
    const { agent } = await track(enrolledAgent(collector, state.dir));
    expect(collector.enrollRequests).toHaveLength(1);
    const request = collector.enrollRequests[0];
    expect(request?.csrPem).toContain("BEGIN CERTIFICATE REQUEST");
    // Only a CSR leaves the node, never key material.
    expect(JSON.stringify(request)).not.toContain("PRIVATE KEY");
    expect(agent.identity().nodeId).toBe(collector.nodeId);

    const path = join(state.dir, IDENTITY_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(state.dir)).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(path, "utf8"));
    expect(stored.keyPem).toContain("PRIVATE KEY");
    expect(stored.caPem).toBe(collector.ca.certPem);

    // The stored certificate is the one the collector sees over mutual TLS.
    await waitFor(() => collector.hellos.length === 1, "hello");
    expect(collector.hellos[0]?.peerSerial).toBe(certificateInfo(stored.certPem).serialHex);
    expect(collector.hellos[0]?.hello.nodeId).toBe(collector.nodeId);
  });

  it("a later start skips enrollment: no token needed, the used token is never sent again", async () => {
    const first = await track(enrolledAgent(collector, state.dir));
    await waitFor(() => collector.hellos.length === 1, "first hello");
    await first.agent.stop();

    const second = createTestAgent({ collector, dir: state.dir });
    running.push(second);
    await second.agent.start();
    await waitFor(() => collector.hellos.length === 2, "second hello");
    expect(collector.enrollRequests).toHaveLength(1);
    expect(second.agent.identity().nodeId).toBe(collector.nodeId);
  });

  it("an unenrolled node without a token refuses to start and names what is missing", async () => {
    const t = createTestAgent({ collector, dir: state.dir });
    await expect(t.agent.start()).rejects.toThrow(/AGENT_ENROLL_TOKEN/);
    expect(collector.enrollRequests).toHaveLength(0);
  });

  it("a used or wrong token is rejected by the collector and nothing is stored", async () => {
    const t = createTestAgent({ collector, dir: state.dir, token: "not-issued" });
    await expect(t.agent.start()).rejects.toThrow(/enrollment failed/);
    await expect(stat(join(state.dir, IDENTITY_FILE))).rejects.toThrow();
  });
});

describe("certificate renewal", () => {
  it("renews at 2/3 of the lifetime over mTLS and swaps credentials without dropping the session or usage", async () => {
    const t = await track(enrolledAgent(collector, state.dir));
    const { agent, clock, xray } = t;
    await waitFor(() => collector.hellos.length === 1, "hello");
    const session = collector.active();
    for (const m of snapshotMessages({ revision: 1n, users: [], nodeConfig: NODE_CONFIG })) session?.send(m);
    await waitFor(() => collector.acks.length === 1, "snapshot ack");

    collector.autoAck = false;
    const before = agent.identity();
    await agent.tickMaintenance();
    expect(collector.renewCalls).toBe(0); // not due yet

    // Pending usage must survive the swap.
    for (const m of snapshotMessages({ revision: 2n, users: [desiredUser("sub_a", { engines: ["xray"] })] }))
      session?.send(m);
    await waitFor(() => collector.acks.length === 2, "second snapshot ack");
    xray.traffic("sub_a", 100, 1000);
    await agent.tickUsage();
    await waitFor(() => collector.usageLog.length === 1, "usage");
    expect(agent.queue().metrics().pendingBatches).toBe(1);

    clock.advance((before.notAfter.getTime() - before.notBefore.getTime()) * 0.7);
    await agent.tickMaintenance();
    expect(collector.renewCalls).toBe(1);
    const after = agent.identity();
    expect(after.nodeId).toBe(before.nodeId);
    expect(certificateInfo(after.certPem).serialHex).not.toBe(certificateInfo(before.certPem).serialHex);
    expect(after.keyPem).not.toBe(before.keyPem);
    const stored = JSON.parse(await readFile(join(state.dir, IDENTITY_FILE), "utf8"));
    expect(stored.certPem).toBe(after.certPem);

    // Same stream, nothing lost.
    expect(collector.sessions).toHaveLength(1);
    expect(session?.ended).toBe(false);
    expect(agent.queue().metrics().pendingBatches).toBe(1);

    // The next stream authenticates with the new certificate, and the pending batch goes out again.
    collector.autoAck = true;
    session?.drop();
    await waitFor(() => collector.sessions.length === 2, "reconnect");
    expect(collector.sessions[1]?.peerSerial).toBe(certificateInfo(after.certPem).serialHex);
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "ack after reconnect");
    expect(collector.totals().get("sub_a")).toEqual({ up: 100, down: 1000 });
  });

  it("Close(RENEW_CERTIFICATE) makes the agent renew and reconnect with the new certificate", async () => {
    const { agent } = await track(enrolledAgent(collector, state.dir));
    await waitFor(() => collector.hellos.length === 1, "hello");
    const serial = certificateInfo(agent.identity().certPem).serialHex;
    collector.active()?.close(CloseReason.RENEW_CERTIFICATE);
    await waitFor(() => collector.hellos.length === 2, "reconnect");
    expect(collector.renewCalls).toBe(1);
    expect(collector.hellos[1]?.peerSerial).not.toBe(serial);
    expect(collector.hellos[1]?.peerSerial).toBe(certificateInfo(agent.identity().certPem).serialHex);
  });
});
