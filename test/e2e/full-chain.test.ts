// The whole chain on real software (issue 6): the control plane (REST API + the real collector over
// mTLS, in-process, PGlite or PostgreSQL per the test database rules) and the real agent daemon
// (`vpnpanel agent`, a child process, enrolled with a token obtained through the API) driving a Debian
// v2ray 4.34 core and a wireguard-go interface. Clients are real too: v2ray processes run from the
// panel's rendered xray-json, and a WireGuard interface in another namespace set up from the rendered
// .conf. Proven here:
//   - VLESS, VMess and Trojan traffic is recorded by the panel exactly as the core counted it;
//   - a user added through the API can connect within 1 s; an exhausted quota cuts new connections
//     within 2 s of the crossing usage being recorded, and the subscription is `limited`;
//   - WireGuard usage equals `wg show dump` for the peer; disabling the subscriber removes the peer;
//   - after kill -9 of the agent mid-traffic, a core restart and a collector outage, the recorded
//     usage still equals the sum of the cores' own counters over their lifetimes.
// Needs root, v2ray, wireguard-go, wg, wg-quick, iproute2, ping and openssl. Network: loopback, and a
// veth pair between two namespaces created here (10.231.0.0/30 and the 10.80.0.0/12 tunnel).

import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyNetns, freePort, run, socksEcho, startEchoServer } from "./agent-support";
import {
  type AgentProcess,
  type Counters,
  coreCounters,
  createLinkedNamespaces,
  netnsExec,
  type Panel,
  peerCounters,
  poll,
  type RenderedClient,
  selfSignedCertificate,
  spawnAgent,
  startPanel,
  startRenderedClient,
  stopProcess,
  type WireguardClient,
  wireguardClientFromConf,
} from "./full-chain-support";

const N = 200_000;
const ECHO_HOST = "localhost"; // a name, not 127.0.0.1: the rendered client routes private IPs direct
const SERVER_VETH = "10.231.0.1";
const CLIENT_VETH = "10.231.0.2";
const WG_PORT = 51820;

type Protocol = "vless" | "vmess" | "trojan";
interface Subscriber {
  id: string;
  subscriptionId: string;
  token: string;
  wgPublicKey: string;
}

const sum = (...all: Array<Counters | undefined>): Counters =>
  all.reduce<Counters>((t, c) => ({ up: t.up + (c?.up ?? 0), down: t.down + (c?.down ?? 0) }), {
    up: 0,
    down: 0,
  });

describe("full chain: API → collector → agent → v2ray 4.34 / wireguard-go → real clients", () => {
  const tag = randomBytes(2).toString("hex");
  const ns = { server: `fcs-${tag}`, client: `fcc-${tag}` };
  const wgServerIface = `fcw${tag}0`; // AGENT_WG_INTERFACE_PREFIX + interface index
  const wgClientIface = `fcc${tag}`;
  const ports = { api: 0, vless: 0, vmess: 0, trojan: 0, health: 0 };
  let dir: string;
  let panel: Panel;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let nodeId: string;
  let agentEnv: Record<string, string>;
  let agent: AgentProcess | null = null;
  let wgClient: WireguardClient | null = null;
  const clients: RenderedClient[] = [];
  const users = new Map<Protocol, Subscriber>();
  const protocolClients = new Map<Protocol, RenderedClient>();
  const trafficRange = () => ({
    from: new Date(Date.now() - 86_400_000).toISOString(),
    to: new Date(Date.now() + 86_400_000).toISOString(),
  });

  async function createSubscriber(username: string, extra: Record<string, unknown> = {}) {
    const res = await panel.request("POST", "/users", { username, ...extra });
    const createdAt = performance.now();
    if (res.statusCode !== 201) throw new Error(`POST /users: ${res.statusCode} ${res.body}`);
    const u = res.json() as {
      id: string;
      subscription: { id: string; subscription_url: string };
      credentials: { wg_public_key: string };
    };
    const token = u.subscription.subscription_url.split("/sub/")[1] as string;
    const sub: Subscriber = {
      id: u.id,
      subscriptionId: u.subscription.id,
      token,
      wgPublicKey: u.credentials.wg_public_key,
    };
    return { sub, createdAt };
  }

  /** The subscriber's own document from the public subscription endpoint. */
  async function feed(token: string, format: "xray-json" | "wireguard"): Promise<string> {
    const res = await panel.t.app.inject({ method: "GET", url: `/sub/${token}?format=${format}` });
    if (res.statusCode !== 200) throw new Error(`GET /sub ${format}: ${res.statusCode} ${res.body}`);
    return res.body;
  }

  /**
   * Starts a v2ray client from the subscriber's xray-json: the config for the node's `protocol` inbound.
   * Nodes are assigned to a new subscriber right after its creation (the outbox consumer), and until
   * then the document is the "no servers" placeholder, so the document is fetched until it names the
   * inbound, as a client refreshing its subscription would.
   */
  async function startClient(sub: Subscriber, protocol: Protocol, name: string) {
    const port = ports[protocol];
    const config = await poll(
      async () => {
        const configs = JSON.parse(await feed(sub.token, "xray-json")) as Array<Record<string, unknown>>;
        return configs.find((c) => {
          const out = (c.outbounds as Array<{ protocol: string; settings: Record<string, unknown> }>)[0];
          const servers = (out?.settings.vnext ?? out?.settings.servers) as Array<{ port: number }>;
          return out?.protocol === protocol && servers?.[0]?.port === port;
        });
      },
      `the ${protocol} config of ${name}`,
      10_000,
      20,
    );
    const client = await startRenderedClient(dir, name, config);
    clients.push(client);
    return client;
  }

  const roundTrip = (client: RenderedClient, bytes: number, timeoutMs = 5_000) =>
    socksEcho(client.socksPort, echo.port, bytes, timeoutMs, ECHO_HOST);

  /** The panel's usage of one subscription and engine, from GET /traffic/usage (exact raw tail). */
  async function recorded(subscriptionId: string, engine: "xray" | "wireguard"): Promise<Counters> {
    const q = new URLSearchParams({
      ...trafficRange(),
      subscription_id: subscriptionId,
      engine,
      group_by: "none",
    });
    const r = await panel.call<{ items: Array<{ upload_bytes: number; download_bytes: number }> }>(
      "GET",
      `/traffic/usage?${q}`,
    );
    return { up: r.items[0]?.upload_bytes ?? 0, down: r.items[0]?.download_bytes ?? 0 };
  }

  /** The subscription's period counters (subscription_usage) as GET /users/{id} shows them. */
  async function periodUsage(userId: string) {
    const u = await panel.call<{
      subscription: { upload_bytes: number; download_bytes: number; used_bytes: number; state: string };
    }>("GET", `/users/${userId}`);
    return u.subscription;
  }

  /**
   * Reads `expected` (the software's own counters) and the panel's record together until they agree
   * or `timeoutMs` passes, and returns the last pair: the caller asserts equality, so a mismatch
   * shows both sides. The agent reports every second; this only waits for that report.
   */
  async function settle<T>(
    read: () => Promise<{ expected: T; actual: T }>,
    timeoutMs = 20_000,
  ): Promise<{ expected: T; actual: T }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pair = await read();
      if (JSON.stringify(pair.expected) === JSON.stringify(pair.actual) || Date.now() > deadline) return pair;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const xraySubs = () => [...users.values()].map((u) => u.subscriptionId);

  /** Recorded Xray usage of the protocol users vs. `base` (earlier core lifetimes) + the live core. */
  const xrayTotals = (base: Map<string, Counters>) => async () => {
    const core = await coreCounters(ports.api);
    const expected: Record<string, Counters> = {};
    const actual: Record<string, Counters> = {};
    for (const sub of xraySubs()) {
      expected[sub] = sum(base.get(sub), core.get(sub));
      actual[sub] = await recorded(sub, "xray");
    }
    return { expected, actual };
  };

  const corePid = async (): Promise<number> =>
    Number((await readFile(join(dir, "agent", "xray", "v2ray4.pid"), "utf8").catch(() => "")).split(" ")[0]);
  /** Running, not a zombie (an orphaned core is reaped by whatever init this machine has). */
  const alive = async (pid: number) => {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    return stat !== "" && !/^\d+ \(.*\) Z/.test(stat);
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("the full-chain e2e test needs root");
    for (const bin of ["v2ray", "wireguard-go", "wg", "wg-quick", "ip", "ping", "openssl"])
      await run("sh", ["-c", `command -v ${bin}`]);
    dir = await mkdtemp(join(tmpdir(), "full-chain-"));
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
    await createLinkedNamespaces({
      ...ns,
      veth: `fcv${tag}`,
      serverAddress: SERVER_VETH,
      clientAddress: CLIENT_VETH,
    });
    echo = await startEchoServer();
    panel = await startPanel();
  });

  afterAll(async () => {
    for (const c of clients) await c.stop();
    await wgClient?.down();
    if (agent) await stopProcess(agent.proc);
    // A core left behind by a failed step (its agent stops it on a clean exit).
    const pid = dir ? await corePid() : 0;
    if (pid && (await alive(pid)) && (await readFile(`/proc/${pid}/cmdline`, "utf8")).includes("v2ray"))
      process.kill(pid, "SIGKILL");
    await echo?.close();
    await panel?.close();
    await destroyNetns(ns.client);
    await destroyNetns(ns.server);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a node defined through the API is served by an agent enrolled with an API token", async () => {
    const tls = await selfSignedCertificate(dir);
    const listen = { listen: "127.0.0.1" };
    const node = await panel.call<{ id: string }>("POST", "/nodes", {
      name: "edge-e2e",
      address: "127.0.0.1",
      core: "v2ray",
      engines: ["xray", "wireguard"],
      inbounds: [
        {
          tag: "vless-tcp",
          protocol: "vless",
          port: ports.vless,
          transport: { type: "tcp" },
          security: { type: "none" },
          server: listen,
        },
        {
          tag: "vmess-tcp",
          protocol: "vmess",
          port: ports.vmess,
          transport: { type: "tcp" },
          security: { type: "none" },
          server: listen,
        },
        {
          tag: "trojan-tls",
          protocol: "trojan",
          port: ports.trojan,
          transport: { type: "tcp" },
          security: { type: "tls", sni: "localhost", allowInsecure: true },
          server: { ...listen, tls },
        },
      ],
      wireguard: {
        listenPort: WG_PORT,
        addresses: ["10.80.0.1/12"],
        endpointHost: SERVER_VETH,
        allowedIps: ["10.80.0.0/12"],
      },
    });
    nodeId = node.id;
    await panel.call("PUT", `/nodes/${nodeId}/policy`, { usage_interval_seconds: 1 }, 200);
    const enrollment = await panel.call<{
      token: string;
      ca_pem: string;
      collector_address: string;
      enroll_address: string;
    }>("POST", `/nodes/${nodeId}/enrollment-tokens`);
    agentEnv = {
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
      AGENT_COLLECTOR_ADDRESSES: enrollment.collector_address,
      AGENT_ENROLL_ADDRESS: enrollment.enroll_address,
      AGENT_CA_PEM: enrollment.ca_pem,
      AGENT_STATE_DIR: join(dir, "agent"),
      AGENT_HOSTNAME: "edge-e2e",
      AGENT_ENGINES: "xray,wireguard",
      AGENT_XRAY_FLAVOR: "v2ray4",
      AGENT_XRAY_API_PORT: String(ports.api),
      AGENT_WG_NETNS: ns.server,
      AGENT_WG_MODE: "userspace",
      AGENT_WG_INTERFACE_PREFIX: `fcw${tag}`,
      AGENT_HTTP_PORT: String(ports.health),
      AGENT_USAGE_INTERVAL_SECONDS: "1",
      AGENT_RECONNECT_BASE_MS: "50",
      AGENT_RECONNECT_MAX_MS: "500",
    };
    agent = spawnAgent({ ...agentEnv, AGENT_ENROLL_TOKEN: enrollment.token });

    const health = await poll(
      async () => {
        const h = await panel.call<{ connected: boolean; wireguard_interfaces: unknown[] }>(
          "GET",
          `/nodes/${nodeId}/health`,
        );
        return h.connected && h.wireguard_interfaces.length > 0 ? h : undefined;
      },
      "the agent's session",
      60_000,
    );
    expect(health).toMatchObject({
      capabilities: expect.arrayContaining([expect.objectContaining({ core: "v2ray", version: "4.34.0" })]),
      wireguard_interfaces: [expect.objectContaining({ name: wgServerIface, listen_port: WG_PORT })],
    });
    const certs = await panel.call<{ items: Array<{ issued_via: string }> }>(
      "GET",
      `/nodes/${nodeId}/certificates`,
    );
    expect(certs.items).toHaveLength(1);
    const { stdout } = await netnsExec(ns.server, "wg", "show", wgServerIface, "listen-port");
    expect(stdout.trim()).toBe(String(WG_PORT));
  });

  it("VLESS, VMess and Trojan traffic from the rendered clients is recorded exactly as the core counted it", async () => {
    for (const protocol of ["vless", "vmess", "trojan"] as const)
      users.set(protocol, (await createSubscriber(`${protocol}-user`)).sub);
    for (const [protocol, sub] of users)
      protocolClients.set(protocol, await startClient(sub, protocol, protocol));
    for (const [protocol, client] of protocolClients) {
      // The user reaches the node within a second (next test); poll until then.
      await poll(
        async () => ((await roundTrip(client, 1_000, 1_000)) === 1_000 ? true : undefined),
        protocol,
      );
      expect(await roundTrip(client, N), protocol).toBe(N);
    }

    const { expected, actual } = await settle(xrayTotals(new Map()));
    expect(actual).toEqual(expected);
    for (const sub of xraySubs()) {
      expect(expected[sub]?.up).toBeGreaterThanOrEqual(N);
      expect(expected[sub]?.down).toBeGreaterThanOrEqual(N);
    }
    // The subscription's own period counters agree (no WireGuard traffic for these users).
    for (const sub of users.values()) {
      const period = await periodUsage(sub.id);
      expect({ up: period.upload_bytes, down: period.download_bytes }).toEqual(expected[sub.subscriptionId]);
    }
  });

  it("a user added through the API connects within 1 s of the 201", async () => {
    const { sub, createdAt } = await createSubscriber("late-user");
    const client = await startClient(sub, "vless", "late");
    const connectedAt = await poll(
      async () => ((await roundTrip(client, 1_000, 300)) === 1_000 ? performance.now() : undefined),
      "the new user's first round trip",
      10_000,
      20,
    );
    expect(connectedAt - createdAt).toBeLessThanOrEqual(1_000);
  });

  it("an exhausted quota cuts new connections within 2 s of the crossing usage being recorded", async () => {
    const quota = 250_000;
    const { sub } = await createSubscriber("quota-user", { quota_bytes: quota });
    const client = await startClient(sub, "vless", "quota");
    await poll(
      async () => ((await roundTrip(client, 1_000, 300)) === 1_000 ? true : undefined),
      "quota user",
    );
    expect(await roundTrip(client, 300_000)).toBe(300_000); // 600 kB through the core, past the quota

    const crossed = await poll(
      async () => {
        const s = await periodUsage(sub.id);
        return s.used_bytes >= quota ? { at: performance.now(), state: s.state } : undefined;
      },
      "the crossing usage",
      15_000,
      20,
    );
    // Quota and state change are one ingest transaction: the usage is never seen without the state.
    expect(crossed.state).toBe("limited");
    const cutAt = await poll(
      async () => ((await roundTrip(client, 1_000, 300)) < 1_000 ? performance.now() : undefined),
      "the cut-off",
      5_000,
      20,
    );
    expect(cutAt - crossed.at).toBeLessThanOrEqual(2_000);
    expect((await periodUsage(sub.id)).state).toBe("limited");
    expect(await roundTrip(client, 1_000, 500)).toBeLessThan(1_000); // and it stays cut
  });

  it("WireGuard from the rendered .conf in another namespace: usage equals wg show dump; disabling removes the peer", async () => {
    const { sub } = await createSubscriber("wg-user");
    await poll(
      async () => await peerCounters(ns.server, wgServerIface, sub.wgPublicKey),
      "the peer on the server",
    );
    const endpoint = `Endpoint = ${SERVER_VETH}:${WG_PORT}`;
    const conf = await poll(async () => {
      const body = await feed(sub.token, "wireguard");
      return body.includes(endpoint) ? body : undefined;
    }, "the node's .conf");
    wgClient = await wireguardClientFromConf(dir, ns.client, wgClientIface, conf);
    expect(wgClient.address).toMatch(/^10\.(8[0-9]|9[0-5])\./);

    const { stdout } = await netnsExec(
      ns.client,
      "ping",
      "-q",
      "-c",
      "20",
      "-i",
      "0.02",
      "-s",
      "1000",
      "-W",
      "2",
      "10.80.0.1",
    );
    const received = Number(/(\d+) received/.exec(stdout)?.[1] ?? 0);
    expect(received).toBeGreaterThan(0);
    // Down before comparing: a live client would send keepalives after the last reply.
    await wgClient.down();
    wgClient = null;

    const { expected, actual } = await settle(async () => ({
      expected: await peerCounters(ns.server, wgServerIface, sub.wgPublicKey),
      actual: await recorded(sub.subscriptionId, "wireguard"),
    }));
    expect(actual).toEqual(expected);
    expect(expected?.up).toBeGreaterThan(received * 1_000);
    expect(expected?.down).toBeGreaterThan(received * 1_000);

    await panel.call("POST", `/users/${sub.id}/subscription/disable`, {}, 200);
    const peers = await poll(
      async () => {
        const { stdout: list } = await netnsExec(ns.server, "wg", "show", wgServerIface, "peers");
        return list.includes(sub.wgPublicKey) ? undefined : list;
      },
      "the peer's removal",
      5_000,
      20,
    );
    expect(peers).not.toContain(sub.wgPublicKey);
    expect(await recorded(sub.subscriptionId, "wireguard")).toEqual(expected);
  });

  it("after kill -9 of the agent, a core restart and a collector outage the usage still equals the cores' counters", async () => {
    const clientsInOrder = [...protocolClients.values()];
    const pushTraffic = async (bytes: number) => {
      for (const client of clientsInOrder) expect(await roundTrip(client, bytes)).toBe(bytes);
    };
    const add = (a: Map<string, Counters>, b: Map<string, Counters>) =>
      new Map(xraySubs().map((s) => [s, sum(a.get(s), b.get(s))]));

    // 1. kill -9 mid-traffic. The orphaned core finishes the transfers; its final counters are the
    //    first lifetime. The restarted agent reads them from the orphan, stops it and starts a new core.
    const orphan = await corePid();
    const inFlight = Promise.all(clientsInOrder.map((c) => roundTrip(c, 10 * N, 30_000)));
    agent?.proc.kill("SIGKILL");
    await agent?.exited;
    expect(await inFlight).toEqual(clientsInOrder.map(() => 10 * N));
    const lifetime1 = await coreCounters(ports.api);
    agent = spawnAgent(agentEnv);
    await poll(
      async () => (!(await alive(orphan)) && (await corePid()) !== orphan ? true : undefined),
      "new core",
      30_000,
    );
    for (const client of clientsInOrder)
      await poll(
        async () => ((await roundTrip(client, 1_000, 1_000)) === 1_000 ? true : undefined),
        "new core",
      );
    await pushTraffic(N);
    const afterKill = await settle(xrayTotals(lifetime1));
    expect(afterKill.actual).toEqual(afterKill.expected);

    // 2. The core dies (kill -9); the agent's driver restarts it and re-applies the users. Everything
    //    the second core counted was recorded (just checked) and nothing has moved since.
    const before = add(lifetime1, await coreCounters(ports.api));
    const second = await corePid();
    process.kill(second, "SIGKILL");
    await poll(
      async () => ((await corePid()) !== second && (await corePid()) > 0 ? true : undefined),
      "restart",
    );
    for (const client of clientsInOrder)
      await poll(
        async () => ((await roundTrip(client, 1_000, 1_000)) === 1_000 ? true : undefined),
        "re-applied",
      );
    await pushTraffic(N);
    const afterCore = await settle(xrayTotals(before));
    expect(afterCore.actual).toEqual(afterCore.expected);

    // 3. The collector goes away; the node keeps serving and queues its usage on disk.
    await panel.stopCollector();
    const duringOutage = new Map(
      await Promise.all(xraySubs().map(async (s) => [s, await recorded(s, "xray")] as const)),
    );
    await pushTraffic(N);
    const health = async () =>
      (await (await fetch(`http://127.0.0.1:${ports.health}/health`)).json()) as {
        usageQueue: { pendingBatches: number };
      };
    await poll(
      async () => ((await health()).usageQueue.pendingBatches > 0 ? true : undefined),
      "queued usage",
    );
    for (const s of xraySubs()) expect(await recorded(s, "xray")).toEqual(duringOutage.get(s));
    await panel.startCollector();
    const afterOutage = await settle(xrayTotals(before), 30_000);
    expect(afterOutage.actual).toEqual(afterOutage.expected);
  });
});
