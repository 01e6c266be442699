// The node agent's engine drivers on real cores: v2ray 4.34 on loopback (real client traffic through
// VLESS, VMess, Trojan and Shadowsocks) and WireGuard (wireguard-go or kernel) inside namespaces
// created here. Needs root, v2ray, wireguard-go, wg and iproute2.

import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentUser, RestartedEvent } from "../../apps/node-agent/src/engines/types";
import { generateKeyPair } from "../../apps/node-agent/src/engines/wireguard/keys";
import { createRunner } from "../../apps/node-agent/src/engines/wireguard/runner";
import {
  createWireguardDriver,
  type WireguardDriver,
} from "../../apps/node-agent/src/engines/wireguard/wireguard-driver";
import { createXrayDriver, type XrayDriver } from "../../apps/node-agent/src/engines/xray/xray-driver";
import { type BatchQueue, openBatchQueue } from "../../apps/node-agent/src/queue/batch-queue";
import { createUsageRecorder, type UsageRecorder } from "../../apps/node-agent/src/usage/usage-recorder";
import {
  destroyNetns,
  eventually,
  freePort,
  run,
  socksEcho,
  startEchoServer,
  startV2rayClient,
} from "./agent-support";

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const N = 100_000;

const xrayUser = (name: string, ssPort: number): AgentUser & { xray: NonNullable<AgentUser["xray"]> } => ({
  id: `${name}@e2e`,
  xray: {
    uuid: randomUUID(),
    trojanPassword: randomBytes(12).toString("hex"),
    shadowsocksPassword: randomBytes(12).toString("hex"),
    shadowsocksPort: ssPort,
  },
});

type XrayTestUser = ReturnType<typeof xrayUser>;

/** A v2ray client with one outbound per user: VLESS, VMess, Trojan and (per-user port) Shadowsocks. */
function clientFor(
  dir: string,
  ports: { vless: number; vmess: number; trojan: number },
  users: readonly XrayTestUser[],
) {
  const [vless, vmess, trojan, ss] = users as [XrayTestUser, XrayTestUser, XrayTestUser, XrayTestUser];
  return startV2rayClient(dir, [
    { protocol: "vless", port: ports.vless, id: vless.xray.uuid },
    { protocol: "vmess", port: ports.vmess, id: vmess.xray.uuid },
    { protocol: "trojan", port: ports.trojan, password: trojan.xray.trojanPassword },
    {
      protocol: "shadowsocks",
      port: ss.xray.shadowsocksPort as number,
      password: ss.xray.shadowsocksPassword,
      method: "aes-256-gcm",
    },
  ]);
}

describe("Xray driver on a real v2ray 4.34 core", () => {
  let dir: string;
  let driver: XrayDriver;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let client: Awaited<ReturnType<typeof startV2rayClient>>;
  let queue: BatchQueue;
  let recorder: UsageRecorder;
  let users: ReturnType<typeof xrayUser>[];
  const ports = { api: 0, vless: 0, vmess: 0, trojan: 0 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-xray-"));
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
    users = [
      xrayUser("vless", await freePort()),
      xrayUser("vmess", await freePort()),
      xrayUser("trojan", await freePort()),
      xrayUser("ss", await freePort()),
    ];
    driver = createXrayDriver({ flavor: "v2ray4", stateDir: join(dir, "core"), logger });
    await driver.start({
      apiPort: ports.api,
      inbounds: [
        { tag: "vless-in", protocol: "vless", listen: "127.0.0.1", port: ports.vless },
        { tag: "vmess-in", protocol: "vmess", listen: "127.0.0.1", port: ports.vmess },
        { tag: "trojan-in", protocol: "trojan", listen: "127.0.0.1", port: ports.trojan },
        {
          tag: "ss-in",
          protocol: "shadowsocks",
          listen: "127.0.0.1",
          port: 0,
          shadowsocksMethod: "aes-256-gcm",
        },
      ],
    });
    echo = await startEchoServer();
    client = await clientFor(dir, ports, users);
    queue = await openBatchQueue({ dir: join(dir, "queue") });
    recorder = createUsageRecorder(queue);
  });

  afterAll(async () => {
    await client?.stop();
    await driver?.stop();
    await echo?.close();
    await queue?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("applies a snapshot once; re-applying the unchanged snapshot touches nothing", async () => {
    const first = await driver.applySnapshot(users);
    expect(first.failed).toEqual([]);
    expect(first.added.sort()).toEqual(users.map((u) => u.id).sort());
    const again = await driver.applySnapshot(users);
    expect(again).toMatchObject({ added: [], removed: [], updated: [], unchanged: 4, failed: [] });
  });

  it("carries real bytes through VLESS, VMess, Trojan and Shadowsocks users and counts them per user", async () => {
    for (const port of client.socksPorts) expect(await socksEcho(port, echo.port, N)).toBe(N);
    const readings = await driver.readUsage();
    for (const user of users) {
      const r = readings.find((x) => x.userId === user.id);
      expect(r?.up, user.id).toBeGreaterThanOrEqual(N);
      expect(r?.down, user.id).toBeGreaterThanOrEqual(N);
    }
    const [batch] = await recorder.record("xray", readings);
    expect(batch?.deltas).toHaveLength(4);
    for (const d of batch?.deltas ?? []) expect(d.up).toBeGreaterThanOrEqual(N);
    // An unchanged reading yields no batch at all.
    expect(await recorder.record("xray", await driver.readUsage())).toEqual([]);
  });

  it("a removed user's new connections fail and the removal returns its final reading", async () => {
    const vless = users[0] as (typeof users)[0];
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 10_000)).toBe(10_000);
    const result = await driver.removeUsers([vless.id]);
    expect(result.removed).toEqual([vless.id]);
    expect(result.final).toHaveLength(1);
    expect(result.final[0]?.up).toBeGreaterThanOrEqual(N + 10_000);
    const [batch] = await recorder.recordFinal("xray", result.final);
    // Only the 10k pushed since the last sample are new.
    expect(batch?.deltas[0]?.up).toBeGreaterThanOrEqual(10_000);
    expect(batch?.deltas[0]?.up).toBeLessThan(N);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 10_000, 3_000)).toBeLessThan(10_000);
    expect(await socksEcho(client.socksPorts[1] as number, echo.port, 10_000)).toBe(10_000);
  });

  it("restarts a core killed with SIGKILL, re-applies its users, and counting continues exactly", async () => {
    const vmess = users[1] as (typeof users)[0];
    await recorder.record("xray", await driver.readUsage());
    const restarted = new Promise<RestartedEvent>((resolve) => driver.on("restarted", resolve));
    const oldPid = driver.pid() as number;
    process.kill(oldPid, "SIGKILL");
    const event = await restarted;
    expect(event.reapplied).toBe(3);
    expect(driver.pid()).not.toBe(oldPid);
    expect(driver.status().restarts).toBe(1);

    const before = queue.pending().reduce((sum, b) => sum + sumUp(b.deltas, vmess.id), 0);
    // A fresh core's counters start at zero; push less than the old value so a naive "went down"
    // check alone would also work, then more than it so only the generation rule is right.
    expect(await socksEcho(client.socksPorts[1] as number, echo.port, N / 2)).toBe(N / 2);
    await recorder.record("xray", await driver.readUsage());
    expect(await socksEcho(client.socksPorts[1] as number, echo.port, 2 * N)).toBe(2 * N);
    await recorder.record("xray", await driver.readUsage());
    const after = queue.pending().reduce((sum, b) => sum + sumUp(b.deltas, vmess.id), 0);
    const counted = after - before;
    expect(counted).toBeGreaterThanOrEqual(2.5 * N);
    expect(counted).toBeLessThan(2.5 * N * 1.01);
    // The removed user stays removed after the restart.
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000, 3_000)).toBeLessThan(1_000);
  });
});

describe("Xray driver: users preloaded into the core's config when it starts (v2ray 4.34)", () => {
  let dir: string;
  let driver: XrayDriver;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let client: Awaited<ReturnType<typeof startV2rayClient>>;
  let users: ReturnType<typeof xrayUser>[];
  let malformed: ReturnType<typeof xrayUser>;
  const ports = { api: 0, vless: 0, vmess: 0, trojan: 0 };
  const configPath = () => join(dir, "core", "v2ray4-config.json");
  const clientsOf = async (tag: string): Promise<string[]> => {
    const config = JSON.parse(await readFile(configPath(), "utf8")) as {
      inbounds: Array<{ tag: string; settings?: { clients?: Array<{ email: string }> } }>;
    };
    return (config.inbounds.find((i) => i.tag === tag)?.settings?.clients ?? []).map((c) => c.email);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-xray-preload-"));
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
    users = [
      xrayUser("vless", await freePort()),
      xrayUser("vmess", await freePort()),
      xrayUser("trojan", await freePort()),
      xrayUser("ss", await freePort()),
    ];
    // A UUID the config loader would reject: it must not keep the core from starting.
    malformed = xrayUser("malformed", await freePort());
    malformed.xray.uuid = "not-a-uuid";
    driver = createXrayDriver({ flavor: "v2ray4", stateDir: join(dir, "core"), logger });
    await driver.start(
      {
        apiPort: ports.api,
        inbounds: [
          { tag: "vless-in", protocol: "vless", listen: "127.0.0.1", port: ports.vless },
          { tag: "vmess-in", protocol: "vmess", listen: "127.0.0.1", port: ports.vmess },
          { tag: "trojan-in", protocol: "trojan", listen: "127.0.0.1", port: ports.trojan },
          {
            tag: "ss-in",
            protocol: "shadowsocks",
            listen: "127.0.0.1",
            port: 0,
            shadowsocksMethod: "aes-256-gcm",
          },
        ],
      },
      [...users, malformed],
    );
    echo = await startEchoServer();
    client = await clientFor(dir, ports, users);
  });

  afterAll(async () => {
    await client?.stop();
    await driver?.stop();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("starts the core with the users in its config; the apply that follows adds nobody and reports the rest", async () => {
    const ids = users.map((u) => u.id);
    expect(await clientsOf("vless-in")).toEqual(ids);
    expect(await clientsOf("trojan-in")).toEqual(ids);
    expect(driver.status().users).toBe(4);
    const result = await driver.applySnapshot([...users, malformed]);
    expect(result).toMatchObject({ added: [], removed: [], updated: [], unchanged: 4 });
    expect(result.failed.map((f) => f.userId)).toEqual([malformed.id]);
    // Preloaded users are served on every protocol, the per-user Shadowsocks inbound included.
    for (const port of client.socksPorts) expect(await socksEcho(port, echo.port, 10_000)).toBe(10_000);
    const readings = await driver.readUsage();
    for (const user of users) expect(readings.find((r) => r.userId === user.id)?.up).toBe(10_000);
  });

  it("later changes go through the API: a removed user is gone, an added one is served", async () => {
    const removed = await driver.removeUsers([users[0]?.id as string]);
    expect(removed.removed).toEqual([users[0]?.id]);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000, 3_000)).toBeLessThan(1_000);
    const added = await driver.addUsers([users[0] as (typeof users)[0]]);
    expect(added.added).toEqual([users[0]?.id]);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000)).toBe(1_000);
    await driver.removeUsers([users[0]?.id as string]);
  });

  it("after a crash the new core starts with the registry in its config, the removed user not in it", async () => {
    const restarted = new Promise<RestartedEvent>((resolve) => driver.on("restarted", resolve));
    process.kill(driver.pid() as number, "SIGKILL");
    const event = await restarted;
    expect(event).toMatchObject({ reapplied: 3, failed: [] });
    const expected = users.slice(1).map((u) => u.id);
    expect(await clientsOf("vless-in")).toEqual(expected);
    expect(await clientsOf("vmess-in")).toEqual(expected);
    // Counters of the new core start from zero; every remaining user is served again.
    for (const port of client.socksPorts.slice(1))
      expect(await socksEcho(port, echo.port, 5_000)).toBe(5_000);
    const readings = await driver.readUsage();
    for (const user of users.slice(1)) expect(readings.find((r) => r.userId === user.id)?.up).toBe(5_000);
    expect(await socksEcho(client.socksPorts[0] as number, echo.port, 1_000, 3_000)).toBeLessThan(1_000);
  });
});

function sumUp(deltas: ReadonlyArray<{ userId: string; up: number }>, userId: string): number {
  return deltas.filter((d) => d.userId === userId).reduce((s, d) => s + d.up, 0);
}

describe("WireGuard driver in a network namespace", () => {
  const tag = randomBytes(3).toString("hex");
  const ns = `agentwg-${tag}`;
  const clientNs = `agentwgc-${tag}`;
  const prefix = `wgt${tag.slice(0, 4)}`;
  const basePort = 51_800 + (Number.parseInt(tag.slice(0, 2), 16) % 100);
  let dir: string;
  let driver: WireguardDriver;
  let echoServer: ReturnType<typeof spawn> | null = null;
  const peer = (offset: number, psk = false): AgentUser => ({
    id: `peer${offset}@e2e`,
    wireguard: {
      publicKey: generateKeyPair().publicKey,
      ...(psk ? { presharedKey: generateKeyPair().privateKey } : {}),
      allowedIps: [`10.77.${offset >> 8}.${offset & 255}/32`],
    },
  });
  let snapshot: AgentUser[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-wg-"));
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    driver = createWireguardDriver({ stateDir: dir, logger, runner: createRunner({ netns: ns }) });
    await driver.start({
      interfacePrefix: prefix,
      listenPort: basePort,
      addresses: ["10.77.0.1/16"],
      peersPerInterface: 1024,
    });
  });

  afterAll(async () => {
    echoServer?.kill("SIGKILL");
    await driver?.destroy().catch(() => undefined);
    await destroyNetns(clientNs);
    await destroyNetns(ns);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("creates interface 0 with a locally generated private key (mode 0600) and exposes the public key", async () => {
    expect(driver.publicKey()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect((await stat(join(dir, "wg-private.key"))).mode & 0o777).toBe(0o600);
    expect(driver.interfaces()).toMatchObject([{ name: `${prefix}0`, listenPort: basePort, peers: 0 }]);
  });

  it("adds three peers incrementally, one with a preshared key", async () => {
    const three = [peer(2, true), peer(3), peer(4)];
    const result = await driver.addUsers(three);
    expect(result).toMatchObject({ added: three.map((u) => u.id), failed: [] });
    const { stdout } = await run("ip", ["netns", "exec", ns, "wg", "show", `${prefix}0`, "dump"]);
    const lines = stdout.trim().split("\n").slice(1);
    expect(lines).toHaveLength(3);
    const withPsk = lines.find((l) => l.startsWith(three[0]?.wireguard?.publicKey as string));
    expect(withPsk?.split("\t")[1]).toBe(three[0]?.wireguard?.presharedKey);
    snapshot = three;
  });

  it("applies a 2,000-peer snapshot across two interfaces by address slot; re-applying changes nothing", async () => {
    snapshot = [...snapshot, ...Array.from({ length: 1997 }, (_, i) => peer(i + 5))];
    const started = Date.now();
    const result = await driver.applySnapshot(snapshot);
    const elapsed = Date.now() - started;
    expect(result.failed).toEqual([]);
    expect(result.added).toHaveLength(1997);
    expect(result.unchanged).toBe(3);
    const ifaces = driver.interfaces();
    expect(ifaces.map((i) => [i.name, i.listenPort, i.peers])).toEqual([
      [`${prefix}0`, basePort, 1022],
      [`${prefix}1`, basePort + 1, 978],
    ]);
    const { stdout: routes } = await run("ip", ["-n", ns, "route", "show", "dev", `${prefix}1`]);
    expect(routes).toContain("10.77.4.0/22");
    const again = Date.now();
    expect(await driver.applySnapshot(snapshot)).toMatchObject({
      added: [],
      removed: [],
      updated: [],
      unchanged: 2000,
    });
    console.info(`wg snapshot: 2000 peers in ${elapsed} ms, unchanged re-apply in ${Date.now() - again} ms`);
    expect((await driver.readUsage()).length).toBe(2000);
  });

  it("removes a peer after taking its final reading", async () => {
    const victim = snapshot[10] as AgentUser;
    const result = await driver.removeUsers([victim.id]);
    expect(result.removed).toEqual([victim.id]);
    expect(result.final).toMatchObject([{ userId: victim.id, up: 0, down: 0 }]);
    const { stdout } = await run("ip", ["netns", "exec", ns, "wg", "show", `${prefix}0`, "peers"]);
    expect(stdout).not.toContain(victim.wireguard?.publicKey);
    expect((await driver.readUsage()).length).toBe(1999);
  });

  it("a restarted agent adopts the interfaces: the same snapshot changes nothing and counters continue", async () => {
    const live = snapshot.filter((u) => u !== snapshot[10]);
    const before = driver.interfaces();
    const second = createWireguardDriver({ stateDir: dir, logger, runner: createRunner({ netns: ns }) });
    await second.start({
      interfacePrefix: prefix,
      listenPort: basePort,
      addresses: ["10.77.0.1/16"],
      peersPerInterface: 1024,
    });
    expect(second.publicKey()).toBe(driver.publicKey());
    expect(second.interfaces()).toEqual(before);
    expect(await second.applySnapshot(live)).toMatchObject({
      added: [],
      removed: [],
      updated: [],
      unchanged: 1999,
    });
    expect(second.status().generation).toBe(driver.status().generation);
  });

  it("re-creates a vanished interface with its peers and reports it as a restart", async () => {
    const restarted = new Promise<RestartedEvent>((resolve) => driver.on("restarted", resolve));
    const oldGeneration = driver.status().generation;
    await run("ip", ["-n", ns, "link", "del", `${prefix}1`]);
    await driver.readUsage();
    const event = await restarted;
    expect(event.reapplied).toBe(978);
    const { stdout } = await run("ip", ["netns", "exec", ns, "wg", "show", `${prefix}1`, "peers"]);
    expect(stdout.trim().split("\n")).toHaveLength(978);
    expect(driver.status().generation).toBe(oldGeneration); // interface 0 untouched
    expect((await driver.readUsage()).length).toBe(1999);
  });

  it("counts a real client's traffic on the interface its address slot selects (interface 2)", async () => {
    const keys = generateKeyPair();
    const user: AgentUser = {
      id: "client@e2e",
      wireguard: { publicKey: keys.publicKey, allowedIps: ["10.77.11.184/32"] },
    };
    expect((await driver.addUsers([user])).failed).toEqual([]);
    const iface2 = driver.interfaces().find((i) => i.index === 2);
    expect(iface2?.peers).toBe(1);
    // Client namespace joined by a veth pair; the client dials the port of interface 2.
    const [vs, vc] = [`vs${tag}`, `vc${tag}`];
    await run("ip", ["netns", "add", clientNs]);
    await run("ip", ["link", "add", vs, "netns", ns, "type", "veth", "peer", "name", vc, "netns", clientNs]);
    await run("ip", ["-n", ns, "address", "add", "192.168.231.1/30", "dev", vs]);
    await run("ip", ["-n", clientNs, "address", "add", "192.168.231.2/30", "dev", vc]);
    await run("ip", ["-n", ns, "link", "set", vs, "up"]);
    await run("ip", ["-n", clientNs, "link", "set", vc, "up"]);
    const clientIf = `wgc${tag.slice(0, 4)}`;
    const keyFile = join(dir, "client.key");
    await writeFile(keyFile, keys.privateKey, { mode: 0o600 });
    await run("ip", ["netns", "exec", clientNs, "wireguard-go", clientIf], {
      env: { ...process.env, LOG_LEVEL: "" },
    });
    await eventually(() =>
      run("ip", ["netns", "exec", clientNs, "wg", "show", clientIf]).then(
        () => true,
        () => undefined,
      ),
    );
    await run("ip", [
      "netns",
      "exec",
      clientNs,
      "wg",
      "set",
      clientIf,
      "private-key",
      keyFile,
      "peer",
      driver.publicKey() as string,
      "endpoint",
      `192.168.231.1:${iface2?.listenPort}`,
      "allowed-ips",
      "10.77.0.0/16",
    ]);
    await run("ip", ["-n", clientNs, "address", "add", "10.77.11.184/32", "dev", clientIf]);
    await run("ip", ["-n", clientNs, "link", "set", clientIf, "up"]);
    await run("ip", ["-n", clientNs, "route", "add", "10.77.0.0/16", "dev", clientIf]);
    // UDP echo on the node address; replies reach the client only if interface 2's slot route works.
    echoServer = spawn(
      "ip",
      [
        "netns",
        "exec",
        ns,
        process.execPath,
        "-e",
        "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7777,'10.77.0.1')",
      ],
      { stdio: "ignore" },
    );
    const { stdout } = await run("ip", [
      "netns",
      "exec",
      clientNs,
      process.execPath,
      "-e",
      `
      const s = require('dgram').createSocket('udp4'); let got = 0, sent = 0;
      s.on('message', () => { got++; });
      const t = setInterval(() => { if (sent < 20) { s.send(Buffer.alloc(1000), 7777, '10.77.0.1'); sent++; } }, 50);
      setTimeout(() => { clearInterval(t); console.log(got); s.close(); }, 4000);`,
    ]);
    expect(Number(stdout.trim())).toBeGreaterThanOrEqual(10);
    const reading = (await driver.readUsage()).find((r) => r.userId === user.id);
    expect(reading?.up).toBeGreaterThan(10 * 1000);
    expect(reading?.down).toBeGreaterThan(10 * 1000);
  });
});
