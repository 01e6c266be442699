// Helpers for the full-chain e2e test: the control plane (API over app.inject + the real collector on
// fixed loopback ports, so it can be stopped and started again where the agent expects it), the agent
// daemon as a child process (`vpnpanel agent`), v2ray clients run from the panel's rendered configs,
// and WireGuard plumbing in namespaces (veth pair, a client interface from the rendered .conf).

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Collector, startCollector } from "@vpnpanel/collector";
import type { LightMyRequestResponse } from "fastify";
import { collectorEnv } from "../../apps/collector/test/support/harness";
import { createCoreApiClient } from "../../apps/node-agent/src/engines/xray/api-client";
import { V2RAY4 } from "../../apps/node-agent/src/engines/xray/flavor";
import { parseUserTraffic } from "../../apps/node-agent/src/engines/xray/messages-stats";
import { type Account, createTestApi, type TestApi } from "../support/api";
import { freePort, run, waitForPort } from "./agent-support";

export type Counters = { up: number; down: number };

/** Polls `check` every `intervalMs` until it returns a value (not undefined); throws after `timeoutMs`. */
export async function poll<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---- control plane -------------------------------------------------------------------------------

export interface Panel {
  t: TestApi;
  owner: Account;
  /** The current collector (null while it is cut). */
  collector: Collector | null;
  /** Sends a request as the tenant owner; throws unless the status is `expect`. */
  call<T = Record<string, unknown>>(method: string, url: string, body?: unknown, expect?: number): Promise<T>;
  request(method: string, url: string, body?: unknown): Promise<LightMyRequestResponse>;
  stopCollector(): Promise<void>;
  startCollector(): Promise<void>;
  close(): Promise<void>;
}

export async function startPanel(): Promise<Panel> {
  // Fixed ports: enrollment tokens name them, and a restarted collector must be where agents dial.
  const env = {
    ...collectorEnv,
    COLLECTOR_PORT: String(await freePort()),
    ENROLL_PORT: String(await freePort()),
  };
  const t = await createTestApi({ env });
  const owner = t.world.members.owner;
  const start = () => startCollector(t.cp, { pollIntervalMs: 50, tickMs: 500 });
  const request = (method: string, url: string, body?: unknown) =>
    t.call(owner, {
      method: method as "GET",
      url,
      ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
    });
  const panel: Panel = {
    t,
    owner,
    collector: await start(),
    request,
    async call<T>(method: string, url: string, body?: unknown, expect?: number) {
      const res = await request(method, url, body);
      const wanted = expect ?? (method === "POST" ? 201 : 200);
      if (res.statusCode !== wanted)
        throw new Error(`${method} ${url}: ${res.statusCode} (expected ${wanted}) ${res.body}`);
      return (res.body ? res.json() : undefined) as T;
    },
    async stopCollector() {
      await panel.collector?.stop(2_000);
      panel.collector = null;
    },
    async startCollector() {
      panel.collector = await start();
    },
    async close() {
      await panel.stopCollector().catch(() => undefined);
      await t.close();
    },
  };
  return panel;
}

// ---- the agent daemon as a child process ---------------------------------------------------------

export interface AgentProcess {
  proc: ChildProcess;
  exited: Promise<void>;
}

export function spawnAgent(env: Record<string, string>): AgentProcess {
  const bin = new URL("../../apps/cli/bin/vpnpanel.mjs", import.meta.url).pathname;
  const proc = spawn(process.execPath, [bin, "agent"], {
    env: { ...process.env, ...env },
    stdio: process.env.TEST_LOG_LEVEL ? "inherit" : "ignore",
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return { proc, exited };
}

export async function stopProcess(p: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((resolve) => p.once("exit", resolve));
  p.kill(signal);
  await exited;
}

// ---- the v2ray core's own counters ---------------------------------------------------------------

/** The core's per-user counters (StatsService, read without reset). */
export async function coreCounters(apiPort: number): Promise<Map<string, Counters>> {
  const api = createCoreApiClient(V2RAY4, `127.0.0.1:${apiPort}`);
  try {
    const out = new Map<string, Counters>();
    for (const t of parseUserTraffic(await api.queryStats("user>>>", false)).values())
      out.set(t.email, { up: t.up, down: t.down });
    return out;
  } finally {
    api.close();
  }
}

// ---- v2ray clients from the rendered config ------------------------------------------------------

export interface RenderedClient {
  socksPort: number;
  stop(): Promise<void>;
}

/**
 * Runs v2ray with one config of the panel's `xray-json` document. The only change made to it is the
 * client's own local listen ports (the rendered 10808/10809 could be taken on a shared machine); the
 * proxy outbound, routing and everything else stay as rendered.
 */
export async function startRenderedClient(
  dir: string,
  name: string,
  config: Record<string, unknown>,
): Promise<RenderedClient> {
  const inbounds = config.inbounds as Array<{ tag: string; port: number }>;
  const ports = new Map<string, number>();
  for (const inbound of inbounds) ports.set(inbound.tag, await freePort());
  const local = { ...config, inbounds: inbounds.map((i) => ({ ...i, port: ports.get(i.tag) })) };
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(local));
  const proc = spawn("v2ray", ["-config", path], { stdio: "ignore" });
  const socksPort = ports.get("socks") as number;
  await waitForPort(socksPort);
  return { socksPort, stop: () => stopProcess(proc, "SIGKILL") };
}

// ---- namespaces and WireGuard --------------------------------------------------------------------

export const netnsExec = (ns: string, ...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);

/** Two fresh namespaces joined by a veth pair with the given /30 addresses (private 10.x only). */
export async function createLinkedNamespaces(o: {
  server: string;
  client: string;
  veth: string;
  serverAddress: string;
  clientAddress: string;
}): Promise<void> {
  for (const ns of [o.server, o.client]) {
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  await run("ip", [
    ...["link", "add", `${o.veth}a`, "netns", o.server, "type", "veth"],
    ...["peer", "name", `${o.veth}b`, "netns", o.client],
  ]);
  await run("ip", ["-n", o.server, "addr", "add", `${o.serverAddress}/30`, "dev", `${o.veth}a`]);
  await run("ip", ["-n", o.client, "addr", "add", `${o.clientAddress}/30`, "dev", `${o.veth}b`]);
  await run("ip", ["-n", o.server, "link", "set", `${o.veth}a`, "up"]);
  await run("ip", ["-n", o.client, "link", "set", `${o.veth}b`, "up"]);
}

/** The transfer counters of one peer in `wg show <iface> dump` (undefined when it is not listed). */
export async function peerCounters(
  ns: string,
  iface: string,
  publicKey: string,
): Promise<Counters | undefined> {
  const { stdout } = await netnsExec(ns, "wg", "show", iface, "dump");
  for (const line of stdout.trim().split("\n").slice(1)) {
    const cols = line.split("\t");
    // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
    if (cols[0] === publicKey) return { up: Number(cols[5]), down: Number(cols[6]) };
  }
  return undefined;
}

export interface WireguardClient {
  /** The tunnel address from the .conf (without prefix). */
  address: string;
  down(): Promise<void>;
}

/**
 * A client interface (wireguard-go) in namespace `ns`, configured from a rendered .conf exactly as
 * wg-quick would: `wg-quick strip` → `wg setconf`, then the Address and a route per AllowedIPs.
 */
export async function wireguardClientFromConf(
  dir: string,
  ns: string,
  iface: string,
  conf: string,
): Promise<WireguardClient> {
  const proc = spawn("ip", ["netns", "exec", ns, "wireguard-go", "-f", iface], {
    env: { ...process.env, WG_PROCESS_FOREGROUND: "1" },
    stdio: "ignore",
  });
  await poll(
    async () => (existsSync(`/var/run/wireguard/${iface}.sock`) ? true : undefined),
    "wireguard-go client socket",
    10_000,
    20,
  );
  const file = join(dir, `${iface}.conf`);
  await writeFile(file, conf);
  await chmod(file, 0o600);
  const { stdout: stripped } = await run("wg-quick", ["strip", file]);
  await writeFile(`${file}.stripped`, stripped, { mode: 0o600 });
  await netnsExec(ns, "wg", "setconf", iface, `${file}.stripped`);
  const key = (name: string) =>
    (new RegExp(`^${name}\\s*=\\s*(.+)$`, "m").exec(conf)?.[1] ?? "").split(",").map((s) => s.trim());
  const addresses = key("Address").filter((a) => a.includes("."));
  for (const a of addresses) await run("ip", ["-n", ns, "addr", "add", a, "dev", iface]);
  await run("ip", ["-n", ns, "link", "set", iface, "up"]);
  for (const route of key("AllowedIPs").filter((r) => r.includes(".")))
    await run("ip", ["-n", ns, "route", "add", route, "dev", iface]);
  return {
    address: (addresses[0] ?? "").split("/")[0] as string,
    async down() {
      await run("ip", ["-n", ns, "link", "del", iface]).catch(() => undefined);
      await stopProcess(proc, "SIGKILL");
    },
  };
}

/** A self-signed certificate for the node's Trojan inbound (the rendered client allows it insecurely). */
export async function selfSignedCertificate(
  dir: string,
): Promise<{ certificateFile: string; keyFile: string }> {
  const certificateFile = join(dir, "node.crt");
  const keyFile = join(dir, "node.key");
  await run("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-keyout", keyFile, "-out", certificateFile, "-days", "2", "-subj", "/CN=localhost"],
    ...["-addext", "subjectAltName=DNS:localhost"],
  ]);
  return { certificateFile, keyFile };
}
