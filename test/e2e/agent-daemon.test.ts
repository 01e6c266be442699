// The agent daemon as `vpnpanel agent` runs it (runAgent + env config), on a real v2ray 4.34 core and a
// real wireguard-go interface (inside a namespace created here), against the in-process fake collector
// of apps/node-agent/test (real gRPC, real mTLS). The full chain with the real collector comes with it.
// Needs root, v2ray, wireguard-go, wg and iproute2.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadAgentConfig } from "../../apps/node-agent/src/config";
import { generateKeyPair } from "../../apps/node-agent/src/engines/wireguard/keys";
import { createCoreApiClient } from "../../apps/node-agent/src/engines/xray/api-client";
import { V2RAY4 } from "../../apps/node-agent/src/engines/xray/flavor";
import { parseUserTraffic } from "../../apps/node-agent/src/engines/xray/messages-stats";
import { type RunningAgent, runAgent } from "../../apps/node-agent/src/main";
import { desiredUser, waitFor } from "../../apps/node-agent/test/support/agent-harness";
import {
  type FakeCollector,
  snapshotMessages,
  startFakeCollector,
} from "../../apps/node-agent/test/support/fake-collector";
import { destroyNetns, freePort, run, socksEcho, startEchoServer, startV2rayClient } from "./agent-support";

const N = 200_000;

describe("agent daemon on a real v2ray core and wireguard-go", () => {
  const tag = randomBytes(3).toString("hex");
  const ns = `agentd-${tag}`;
  const prefix = `vpd${tag.slice(0, 4)}`;
  let dir: string;
  let collector: FakeCollector;
  let daemon: RunningAgent | null = null;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let client: Awaited<ReturnType<typeof startV2rayClient>>;
  const ports = { api: 0, vless: 0, vmess: 0, trojan: 0, http: 0, wg: 0 };
  const users = ["sub_vless", "sub_vmess", "sub_trojan"].map((id) =>
    desiredUser(id, { engines: ["xray"], uuid: randomUUID() }),
  );
  const wgUser = desiredUser("sub_wg", { engines: ["wireguard"] });
  let env: Record<string, string>;

  const nodeConfig = () => ({
    xrayInboundsJson: JSON.stringify([
      {
        tag: "vless-in",
        listen: "127.0.0.1",
        port: ports.vless,
        protocol: "vless",
        settings: { decryption: "none" },
      },
      { tag: "vmess-in", listen: "127.0.0.1", port: ports.vmess, protocol: "vmess" },
      { tag: "trojan-in", listen: "127.0.0.1", port: ports.trojan, protocol: "trojan" },
    ]),
    wireguardInterfaces: [{ name: "wg0", listenPort: ports.wg, addresses: ["10.66.0.1/16"], mtu: 0 }],
  });

  async function coreCounters(): Promise<Map<string, { up: number; down: number }>> {
    const api = createCoreApiClient(V2RAY4, `127.0.0.1:${ports.api}`);
    try {
      const out = new Map<string, { up: number; down: number }>();
      for (const t of parseUserTraffic(await api.queryStats("user>>>", false)).values())
        out.set(t.email, { up: t.up, down: t.down });
      return out;
    } finally {
      api.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-daemon-"));
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    wgUser.wireguard = {
      ...(wgUser.wireguard as NonNullable<typeof wgUser.wireguard>),
      publicKey: generateKeyPair().publicKey,
      allowedIps: ["10.66.0.9/32"],
    };
    collector = await startFakeCollector();
    collector.tokens.add("first-start-token");
    env = {
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
      AGENT_COLLECTOR_ADDRESSES: collector.addresses.join(","),
      AGENT_ENROLL_ADDRESS: collector.enrollAddress,
      AGENT_ENROLL_TOKEN: "first-start-token",
      AGENT_CA_PEM: collector.ca.certPem,
      AGENT_STATE_DIR: join(dir, "state"),
      AGENT_ENGINES: "xray,wireguard",
      AGENT_XRAY_FLAVOR: "v2ray4",
      AGENT_XRAY_API_PORT: String(ports.api),
      AGENT_WG_NETNS: ns,
      AGENT_WG_MODE: "userspace",
      AGENT_WG_INTERFACE_PREFIX: prefix,
      AGENT_WG_DOWN_ON_EXIT: "false",
      AGENT_HTTP_PORT: String(ports.http),
      AGENT_SHUTDOWN_GRACE_SECONDS: "5",
    };
    echo = await startEchoServer();
  });

  afterAll(async () => {
    await client?.stop();
    await daemon?.stop();
    await echo?.close();
    await collector?.close();
    await destroyNetns(ns);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("enrolls, applies the snapshot to the real core and interface, and reports the core's capability", async () => {
    daemon = await runAgent(loadAgentConfig(env), { handleSignals: false });
    await waitFor(() => collector.hellos.length === 1, "hello", 20_000);
    const hello = collector.hellos[0]?.hello;
    expect(hello?.engines.find((e) => e.core === "v2ray")?.version).toBe("4.34.0");
    expect(hello?.engines.find((e) => e.core === "v2ray")?.features).toEqual([]); // no REALITY/XTLS/gRPC links
    for (const m of snapshotMessages({ revision: 1n, users: [...users, wgUser], nodeConfig: nodeConfig() }))
      collector.active()?.send(m);
    await waitFor(() => collector.acks.length === 1, "snapshot ack", 30_000);
    expect(collector.acks[0]).toEqual({ commandIds: [], appliedRevision: 1n, failures: [] });
    const { stdout } = await run("ip", ["netns", "exec", ns, "wg", "show", `${prefix}0`, "peers"]);
    expect(stdout.trim()).toBe(wgUser.wireguard?.publicKey);
    const health = (await (await fetch(`http://127.0.0.1:${ports.http}/health`)).json()) as Record<
      string,
      unknown
    >;
    expect(health).toMatchObject({ session: "open", appliedRevision: "1" });
  });

  it("real traffic through VLESS, VMess and Trojan is reported exactly as the core counted it", async () => {
    const [vless, vmess, trojan] = users;
    client = await startV2rayClient(dir, [
      { protocol: "vless", port: ports.vless, id: vless?.xray?.uuid as string },
      { protocol: "vmess", port: ports.vmess, id: vmess?.xray?.uuid as string },
      { protocol: "trojan", port: ports.trojan, password: trojan?.xray?.trojanPassword as string },
    ]);
    for (const port of client.socksPorts) expect(await socksEcho(port, echo.port, N)).toBe(N);
    const agent = daemon?.agent;
    await agent?.tickUsage();
    await waitFor(() => agent?.queue().metrics().pendingBatches === 0, "usage acked", 20_000);
    const core = await coreCounters();
    for (const u of users) {
      expect(core.get(u.userId)?.up, u.userId).toBeGreaterThanOrEqual(N);
      expect(collector.totals().get(u.userId), u.userId).toEqual(core.get(u.userId));
    }
  });

  it("a remove command cuts the user's new connections; the final reading makes the total exact", async () => {
    const vless = users[0];
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 10_000)).toBe(10_000);
    const before = (await coreCounters()).get("sub_vless");
    collector.active()?.send({
      body: {
        $case: "command",
        value: { id: "cut-1", revision: 2n, action: { $case: "removeUser", value: "sub_vless" } },
      },
    });
    await waitFor(() => collector.acks.some((a) => a.commandIds.includes("cut-1")), "command ack", 10_000);
    await waitFor(() => daemon?.agent.queue().metrics().pendingBatches === 0, "final reading acked", 10_000);
    expect(collector.totals().get(vless?.userId as string)).toEqual(before);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000, 3_000)).toBeLessThan(1_000);
    expect(await socksEcho(client.socksPorts[1] as number, echo.port, 1_000)).toBe(1_000);
  });

  it("a restarted daemon serves the stored state before any collector answers, and resumes exactly", async () => {
    await daemon?.stop();
    daemon = null;
    const beforeRestart = collector.totals();
    collector.onHello = () => undefined; // the control plane is unreachable for this start
    const { AGENT_ENROLL_TOKEN: _, ...later } = env;
    daemon = await runAgent(loadAgentConfig(later), { handleSignals: false });
    // The new core got its users from the state dir: the client works without any collector message.
    expect(await socksEcho(client.socksPorts[1] as number, echo.port, N)).toBe(N);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000, 3_000)).toBeLessThan(1_000);
    await waitFor(() => collector.sessions.length === 2, "hello after restart", 20_000);
    expect(collector.hellos.at(-1)?.hello.appliedRevision).toBe(2n);
    expect(collector.enrollRequests).toHaveLength(1);
    const { stdout } = await run("ip", ["netns", "exec", ns, "wg", "show", `${prefix}0`, "peers"]);
    expect(stdout.trim()).toBe(wgUser.wireguard?.publicKey); // the interface kept serving

    // The collector comes back: its first message establishes the session.
    collector.active()?.send({ body: { $case: "policy", value: collector.policy } });
    await daemon.agent.tickUsage();
    await waitFor(() => daemon?.agent.queue().metrics().pendingBatches === 0, "usage acked", 20_000);
    const core = await coreCounters(); // the new core's counters only
    const vmess = collector.totals().get("sub_vmess");
    expect(vmess?.up).toBe((beforeRestart.get("sub_vmess")?.up ?? 0) + (core.get("sub_vmess")?.up ?? 0));
    expect(vmess?.down).toBe(
      (beforeRestart.get("sub_vmess")?.down ?? 0) + (core.get("sub_vmess")?.down ?? 0),
    );
  });
});

describe("agent daemon killed with SIGKILL mid-traffic (separate process, real v2ray core)", () => {
  let dir: string;
  let collector: FakeCollector;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let client: Awaited<ReturnType<typeof startV2rayClient>> | null = null;
  const agents: ChildProcess[] = [];
  const ports = { api: 0, vless: 0 };
  const user = desiredUser("sub_fault", { engines: ["xray"], uuid: randomUUID() });
  let env: Record<string, string>;

  const startAgentProcess = (extra: Record<string, string> = {}) => {
    const bin = new URL("../../apps/cli/bin/vpnpanel.mjs", import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, "agent"], {
      env: { ...process.env, ...env, ...extra },
      stdio: process.env.TEST_LOG_LEVEL ? "inherit" : "ignore",
    });
    agents.push(child);
    return child;
  };

  async function coreCounters(): Promise<{ up: number; down: number } | undefined> {
    const api = createCoreApiClient(V2RAY4, `127.0.0.1:${ports.api}`);
    try {
      return parseUserTraffic(await api.queryStats("user>>>", false)).get(user.userId);
    } finally {
      api.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-fault-"));
    ports.api = await freePort();
    ports.vless = await freePort();
    collector = await startFakeCollector();
    collector.tokens.add("fault-token");
    collector.policy = { ...collector.policy, usageIntervalSeconds: 1 };
    env = {
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
      AGENT_COLLECTOR_ADDRESSES: collector.addresses.join(","),
      AGENT_ENROLL_ADDRESS: collector.enrollAddress,
      AGENT_CA_PEM: collector.ca.certPem,
      AGENT_STATE_DIR: join(dir, "state"),
      AGENT_ENGINES: "xray",
      AGENT_XRAY_FLAVOR: "v2ray4",
      AGENT_XRAY_API_PORT: String(ports.api),
      AGENT_HTTP_PORT: "0",
      AGENT_RECONNECT_BASE_MS: "50",
    };
    echo = await startEchoServer();
  });

  afterAll(async () => {
    await client?.stop();
    for (const a of agents) {
      if (a.exitCode !== null || a.signalCode !== null) continue;
      const exited = new Promise((resolve) => a.once("exit", resolve));
      a.kill("SIGTERM");
      await exited;
    }
    await echo?.close();
    await collector?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("after kill -9 and a restart the recorded usage equals the core's own counters exactly", async () => {
    const first = startAgentProcess({ AGENT_ENROLL_TOKEN: "fault-token" });
    await waitFor(() => collector.hellos.length === 1, "hello", 30_000);
    const nodeConfig = {
      xrayInboundsJson: JSON.stringify([
        {
          tag: "vless-in",
          listen: "127.0.0.1",
          port: ports.vless,
          protocol: "vless",
          settings: { decryption: "none" },
        },
      ]),
      wireguardInterfaces: [],
    };
    for (const m of snapshotMessages({ revision: 1n, users: [user], nodeConfig }))
      collector.active()?.send(m);
    await waitFor(() => collector.acks.length === 1, "snapshot ack", 30_000);
    client = await startV2rayClient(dir, [
      { protocol: "vless", port: ports.vless, id: user.xray?.uuid as string },
    ]);
    const socks = client.socksPorts[0] as number;
    // The first transfer is retried for a few seconds: one CI run saw it closed at once right after the
    // snapshot ack (not reproduced in many runs since; cause not found). What this test proves, exact
    // counts across a kill -9, is measured after it and does not depend on it.
    let echoed = 0;
    for (const deadline = Date.now() + 5_000; echoed < N && Date.now() < deadline; ) {
      echoed = await socksEcho(socks, echo.port, N);
      if (echoed < N) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(echoed).toBe(N);
    await waitFor(() => (collector.totals().get(user.userId)?.up ?? 0) >= N, "first usage reported", 20_000);

    // Mid-traffic: the agent dies while a transfer runs; its core (now an orphan) keeps serving it.
    const inFlight = socksEcho(socks, echo.port, 4 * N, 20_000);
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect(await inFlight).toBe(4 * N);
    const core = await coreCounters(); // the core's own, final counters
    expect(core?.up).toBeGreaterThanOrEqual(5 * N);

    startAgentProcess();
    await waitFor(() => collector.sessions.length === 2, "hello after restart", 30_000);
    await waitFor(
      () => (collector.totals().get(user.userId)?.up ?? 0) >= (core?.up ?? 0),
      "usage of the killed agent's core",
      20_000,
    );
    expect(collector.totals().get(user.userId)).toEqual({ up: core?.up, down: core?.down });
    // The restarted agent serves the user on its new core from the stored desired state.
    expect(await socksEcho(socks, echo.port, N)).toBe(N);
  });
});
