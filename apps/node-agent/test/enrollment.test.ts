import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { certificateInfo } from "@vpnpanel/pki";
import { CloseReason } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import { IDENTITY_FILE } from "../src/identity/identity-store";
import {
  agentFixture,
  createTestAgent,
  desiredUser,
  enrolledAgent,
  NODE_CONFIG,
  waitFor,
} from "./support/agent-harness";
import { snapshotMessages } from "./support/fake-collector";

const fx = agentFixture();

describe("enrollment", () => {
  it("first start enrolls with the token: key made locally, credentials stored 0600, node id from the certificate", async () => {
    const { agent } = await fx.track(enrolledAgent(fx.collector, fx.state.dir));
    expect(fx.collector.enrollRequests).toHaveLength(1);
    const request = fx.collector.enrollRequests[0];
    expect(request?.csrPem).toContain("BEGIN CERTIFICATE REQUEST");
    // Only a CSR leaves the node, never key material.
    expect(JSON.stringify(request)).not.toContain("PRIVATE KEY");
    expect(agent.identity().nodeId).toBe(fx.collector.nodeId);

    const path = join(fx.state.dir, IDENTITY_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(fx.state.dir)).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(path, "utf8"));
    expect(stored.keyPem).toContain("PRIVATE KEY");
    expect(stored.caPem).toBe(fx.collector.ca.certPem);

    // The stored certificate is the one the collector sees over mutual TLS.
    await waitFor(() => fx.collector.hellos.length === 1, "hello");
    expect(fx.collector.hellos[0]?.peerSerial).toBe(certificateInfo(stored.certPem).serialHex);
    expect(fx.collector.hellos[0]?.hello.nodeId).toBe(fx.collector.nodeId);
  });

  it("a later start skips enrollment: no token needed, the used token is never sent again", async () => {
    const first = await fx.track(enrolledAgent(fx.collector, fx.state.dir));
    await waitFor(() => fx.collector.hellos.length === 1, "first hello");
    await first.agent.stop();

    const second = createTestAgent({ collector: fx.collector, dir: fx.state.dir });
    fx.running.push(second);
    await second.agent.start();
    await waitFor(() => fx.collector.hellos.length === 2, "second hello");
    expect(fx.collector.enrollRequests).toHaveLength(1);
    expect(second.agent.identity().nodeId).toBe(fx.collector.nodeId);
  });

  it("an unenrolled node without a token refuses to start and names what is missing", async () => {
    const t = createTestAgent({ collector: fx.collector, dir: fx.state.dir });
    await expect(t.agent.start()).rejects.toThrow(/AGENT_ENROLL_TOKEN/);
    expect(fx.collector.enrollRequests).toHaveLength(0);
  });

  it("a used or wrong token is rejected by the collector and nothing is stored", async () => {
    const t = createTestAgent({ collector: fx.collector, dir: fx.state.dir, token: "not-issued" });
    await expect(t.agent.start()).rejects.toThrow(/enrollment failed/);
    await expect(stat(join(fx.state.dir, IDENTITY_FILE))).rejects.toThrow();
  });
});

describe("certificate renewal", () => {
  it("renews at 2/3 of the lifetime over mTLS and swaps credentials without dropping the session or usage", async () => {
    const t = await fx.track(enrolledAgent(fx.collector, fx.state.dir));
    const { agent, clock, xray } = t;
    await waitFor(() => fx.collector.hellos.length === 1, "hello");
    const session = fx.collector.active();
    for (const m of snapshotMessages({ revision: 1n, users: [], nodeConfig: NODE_CONFIG })) session?.send(m);
    await waitFor(() => fx.collector.acks.length === 1, "snapshot ack");

    fx.collector.autoAck = false;
    const before = agent.identity();
    await agent.tickMaintenance();
    expect(fx.collector.renewCalls).toBe(0); // not due yet

    // Pending usage must survive the swap.
    for (const m of snapshotMessages({ revision: 2n, users: [desiredUser("sub_a", { engines: ["xray"] })] }))
      session?.send(m);
    await waitFor(() => fx.collector.acks.length === 2, "second snapshot ack");
    xray.traffic("sub_a", 100, 1000);
    await agent.tickUsage();
    await waitFor(() => fx.collector.usageLog.length === 1, "usage");
    expect(agent.queue().metrics().pendingBatches).toBe(1);

    clock.advance((before.notAfter.getTime() - before.notBefore.getTime()) * 0.7);
    await agent.tickMaintenance();
    expect(fx.collector.renewCalls).toBe(1);
    const after = agent.identity();
    expect(after.nodeId).toBe(before.nodeId);
    expect(certificateInfo(after.certPem).serialHex).not.toBe(certificateInfo(before.certPem).serialHex);
    expect(after.keyPem).not.toBe(before.keyPem);
    const stored = JSON.parse(await readFile(join(fx.state.dir, IDENTITY_FILE), "utf8"));
    expect(stored.certPem).toBe(after.certPem);

    // Same stream, nothing lost.
    expect(fx.collector.sessions).toHaveLength(1);
    expect(session?.ended).toBe(false);
    expect(agent.queue().metrics().pendingBatches).toBe(1);

    // The next stream authenticates with the new certificate, and the pending batch goes out again.
    fx.collector.autoAck = true;
    session?.drop();
    await waitFor(() => fx.collector.sessions.length === 2, "reconnect");
    expect(fx.collector.sessions[1]?.peerSerial).toBe(certificateInfo(after.certPem).serialHex);
    await waitFor(() => agent.queue().metrics().pendingBatches === 0, "ack after reconnect");
    expect(fx.collector.totals().get("sub_a")).toEqual({ up: 100, down: 1000 });
  });

  it("Close(RENEW_CERTIFICATE) makes the agent renew and reconnect with the new certificate", async () => {
    const { agent } = await fx.track(enrolledAgent(fx.collector, fx.state.dir));
    await waitFor(() => fx.collector.hellos.length === 1, "hello");
    const serial = certificateInfo(agent.identity().certPem).serialHex;
    fx.collector.active()?.close(CloseReason.RENEW_CERTIFICATE);
    await waitFor(() => fx.collector.hellos.length === 2, "reconnect");
    expect(fx.collector.renewCalls).toBe(1);
    expect(fx.collector.hellos[1]?.peerSerial).not.toBe(serial);
    expect(fx.collector.hellos[1]?.peerSerial).toBe(certificateInfo(agent.identity().certPem).serialHex);
  });
});
