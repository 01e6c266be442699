// `npm run bench -- agent [--users N] [--wg-peers N] [--skip-xray] [--skip-wg] [--extras] [...]`
//
// The node agent at 100,000 users on real cores, through the daemon's own apply path: a real v2ray
// 4.34 (Debian `v2ray`, driver flavor "v2ray4") with VLESS + VMess + Trojan inbounds on loopback, and
// wireguard-go interfaces inside a network namespace this benchmark creates (and deletes). The agent's
// state is the real one (openNodeState: desired store, lease guard, usage queue, recorder, pump) and
// snapshots go through createApplier, exactly as the daemon applies them; the drivers are wrapped in
// a Proxy that times them and counts the gRPC calls / `wg`+`ip` commands they make.
//
// Phases (main): 1 initial snapshot on an empty node (both engines start; the v2ray core starts with
// every user written into its config, as the daemon does, WireGuard peers are added);
// 2 "reconnect": the same users in a new snapshot (fresh objects, decoded from bytes) — nothing may be
// re-applied; 2b incremental: --incremental new users added to the running core through the API by
// one diff and removed by another; 3 usage: one agent usage tick with no traffic, then VLESS traffic for --active users
// (one connection each, from a child process), then --polls usage polls with counters present;
// 4 memory: this process's RSS sampled every 100 ms throughout (cores are other processes).
// --extras adds Xray experiments on fresh cores: a raw gRPC-client ceiling, each inbound alone, other
// driver concurrencies, and preloading the users into the core's config instead of the API.
//
// Options (defaults): --users 100000, --wg-peers (= --users), --inbounds vless,vmess,trojan,
// --concurrency 64 (the driver's AlterInbound calls in flight), --incremental min(10000, --users),
// --active (= --users) users that send
// traffic, --traffic-concurrency 64, --traffic-bytes 1024, --polls 3, --peers-per-interface 50000,
// --wg-first-offset 2 (pool offset of the first peer; 1 is the node), --log-level warn.
// Experiments: --try-concurrency 16,256, --raw-ceiling 50000 (with --raw-channels 1), --per-inbound,
// --preload — all four set by --extras; --extras-users N sizes them (default --users).
// The benchmark runs under the V8 flags the daemon is started with (deploy/systemd: a heap cap),
// re-executing itself with them if needed; --node-flags none measures the process as it was started.
// Diagnostics: --gc-phases forces a full GC at each phase boundary and reports the live heap (this
// disturbs the RSS peaks, so use it in a separate run).
//
// Needs root (namespace), v2ray, wireguard-go, wg, ip. Everything it starts is killed and its namespace
// and state directory are removed at the end, also on failure or Ctrl-C; leftovers of a run that was
// SIGKILLed are removed by the next run (they carry the dead run's pid in their names).

import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createApplier } from "@vpnpanel/node-agent/desired/applier";
import { parseXrayInbounds, wireguardBaseConfig } from "@vpnpanel/node-agent/desired/node-config";
import { toAgentUser } from "@vpnpanel/node-agent/desired/user-mapping";
import type { EngineSlot } from "@vpnpanel/node-agent/engine-slots";
import { createXraySlot } from "@vpnpanel/node-agent/engine-slots";
import { mapBounded } from "@vpnpanel/node-agent/engines/async-utils";
import type { AgentUser, EngineDriver } from "@vpnpanel/node-agent/engines/types";
import { createRunner } from "@vpnpanel/node-agent/engines/wireguard/runner";
import { createWireguardDriver } from "@vpnpanel/node-agent/engines/wireguard/wireguard-driver";
import { createCoreApiClient } from "@vpnpanel/node-agent/engines/xray/api-client";
import { buildCoreConfig } from "@vpnpanel/node-agent/engines/xray/base-config";
import { methodPath, V2RAY4 } from "@vpnpanel/node-agent/engines/xray/flavor";
import { encodeAddUser } from "@vpnpanel/node-agent/engines/xray/messages-user";
import { createXrayDriver, type XrayDriver } from "@vpnpanel/node-agent/engines/xray/xray-driver";
import { openNodeState } from "@vpnpanel/node-agent/node-state";
import { Engine, type NodeConfig } from "@vpnpanel/proto";
import pino, { type Logger } from "pino";
import {
  INBOUND_KINDS,
  type InboundKind,
  inboundsJson,
  instrumentDriver,
  type Measured,
  receiveSnapshot,
  startTrafficChild,
  tagOf,
} from "./agent/engines";
import { createH2Unary } from "./agent/h2-unary";
import {
  type CallGroup,
  type CommandGroup,
  countingRunner,
  forceGc,
  type GrpcRecorder,
  installGrpcRecorder,
  procCpuSeconds,
  procRss,
  RssSampler,
  selfCpuSeconds,
} from "./agent/instrument";
import { count, mb, ms, Report, rate, seconds } from "./agent/report";
import {
  Cleanup,
  createNetns,
  destroyNetns,
  freePort,
  killIfOurs,
  NETNS_PREFIX,
  portOpen,
  run,
  STATE_PREFIX,
  sweepStaleRuns,
  withTimeout,
} from "./agent/system";
import { desiredUser, type Population, parseIpv4 } from "./agent/users";

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  users: number;
  wgPeers: number;
  skipXray: boolean;
  skipWg: boolean;
  inbounds: InboundKind[];
  concurrency: number;
  active: number;
  trafficConcurrency: number;
  trafficBytes: number;
  polls: number;
  peersPerInterface: number;
  wgFirstOffset: number;
  tryConcurrency: number[];
  rawCeiling: number;
  rawChannels: number;
  /** Force a full GC at phase boundaries and report the live heap (diagnostic; disturbs the RSS peaks). */
  gcPhases: boolean;
  /** Users for the --extras experiments (default: --users). */
  extrasUsers: number;
  /** New users added to the running core by one diff, then removed by another (0 = skip). */
  incremental: number;
  /** "production": run under the daemon's V8 flags (re-executing if needed); "none": as started. */
  nodeFlags: "production" | "none";
  perInbound: boolean;
  preload: boolean;
  logLevel: string;
}

const VALUE_FLAGS = [
  "users",
  "wg-peers",
  "inbounds",
  "concurrency",
  "active",
  "traffic-concurrency",
  "traffic-bytes",
  "polls",
  "peers-per-interface",
  "wg-first-offset",
  "try-concurrency",
  "raw-ceiling",
  "raw-channels",
  "extras-users",
  "incremental",
  "node-flags",
  "log-level",
];
const BOOLEAN_FLAGS = ["skip-xray", "skip-wg", "extras", "per-inbound", "preload", "gc-phases"];

function parseArgs(args: string[]): Options {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const name = arg.replace(/^--/, "");
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`);
    if (BOOLEAN_FLAGS.includes(name)) flags.add(name);
    else if (VALUE_FLAGS.includes(name)) {
      const value = args[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      values.set(name, value);
    } else throw new Error(`unknown option ${arg}`);
  }
  const int = (name: string, fallback: number, min = 0): number => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const n = Number(text.replace(/_/g, ""));
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects an integer ≥ ${min}`);
    return n;
  };
  const ints = (name: string, fallback: number[]): number[] => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    return text
      .split(",")
      .filter(Boolean)
      .map((t) => {
        const n = Number(t);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} expects integers ≥ 1`);
        return n;
      });
  };
  const extras = flags.has("extras");
  const users = int("users", 100_000, 1);
  const inbounds = (values.get("inbounds") ?? INBOUND_KINDS.join(",")).split(",").filter(Boolean);
  for (const kind of inbounds) {
    if (!INBOUND_KINDS.includes(kind as InboundKind))
      throw new Error(`--inbounds: "${kind}" is not one of ${INBOUND_KINDS.join(", ")}`);
  }
  if (inbounds.length === 0) throw new Error("--inbounds needs at least one inbound");
  return {
    users,
    wgPeers: int("wg-peers", users, 1),
    skipXray: flags.has("skip-xray"),
    skipWg: flags.has("skip-wg"),
    inbounds: inbounds as InboundKind[],
    concurrency: int("concurrency", 64, 1),
    active: Math.min(users, int("active", users)),
    trafficConcurrency: int("traffic-concurrency", 64, 1),
    trafficBytes: int("traffic-bytes", 1024, 1),
    polls: int("polls", 3, 1),
    peersPerInterface: int("peers-per-interface", 50_000, 1),
    wgFirstOffset: int("wg-first-offset", 2),
    tryConcurrency: ints("try-concurrency", extras ? [16, 256] : []),
    rawCeiling: int("raw-ceiling", extras ? 50_000 : 0),
    rawChannels: int("raw-channels", 1, 1),
    extrasUsers: int("extras-users", users, 1),
    incremental: int("incremental", Math.min(10_000, users)),
    nodeFlags: values.get("node-flags") === "none" ? "none" : "production",
    gcPhases: flags.has("gc-phases"),
    perInbound: extras || flags.has("per-inbound"),
    preload: extras || flags.has("preload"),
    logLevel: values.get("log-level") ?? "warn",
  };
}

// ---------------------------------------------------------------------------------------------------
// Shared context

interface Ctx {
  opts: Options;
  say(line: string): void;
  logger: Logger;
  grpc: GrpcRecorder;
  sampler: RssSampler;
  cleanup: Cleanup;
  report: Report;
  baseDir: string;
  pop: Population;
  leaseExpiry: Date;
  /** RSS once the daemon's modules are loaded, before any agent state or user exists. */
  baselineRss: number;
}

const POOL = "10.80.0.0";
const NODE_ADDRESS = "10.80.0.1/12";
const WG_LISTEN_PORT = 51820;
const load1 = () => loadavg()[0]?.toFixed(2) ?? "?";

/** Prints `describe()` every 10 s while `work` runs (long applies should not look hung). */
async function withProgress<T>(ctx: Ctx, describe: () => string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const timer = setInterval(
    () => ctx.say(`  … ${((performance.now() - started) / 1000).toFixed(0)} s: ${describe()}`),
    10_000,
  );
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** AlterInbound rows (one per inbound tag) from a measured Xray call. */
function alterInboundRows(ctx: Ctx, section: string, m: Measured<CallGroup>): void {
  for (const [key, g] of [...m.groups].sort(([a], [b]) => a.localeCompare(b))) {
    if (!key.startsWith("AlterInbound")) continue;
    ctx.report.add({
      section,
      item: `└ ${key}`,
      value: `${count(g.calls)} calls, ${g.errors} errors, latency mean ${ms(g.latency.mean())} / p50 ${ms(g.latency.quantile(0.5))} / p99 ${ms(g.latency.quantile(0.99))} / max ${ms(g.latency.max)} ms`,
    });
  }
}

function commandRows(ctx: Ctx, section: string, m: Measured<CommandGroup>): void {
  for (const [key, g] of [...m.groups].sort(([, a], [, b]) => b.ms - a.ms)) {
    ctx.report.add({
      section,
      item: `└ ${key}`,
      value: `${g.calls} × (${seconds(g.ms / 1000)} total, max ${seconds(g.maxMs / 1000)})${g.errors ? `, ${g.errors} errors` : ""}`,
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Main phases: the agent's own state, applier and engines

const XRAY_MEASURED = ["start", "applySnapshot", "addUsers", "removeUsers", "readUsage"];

/**
 * Changes to a running core go through the API: --incremental new v2ray-only users arrive in one
 * diff (AlterInbound per user per inbound), then leave in another (final reading + AlterInbound).
 */
async function incrementalPhase(
  ctx: Ctx,
  applier: ReturnType<typeof createApplier>,
  xray: ReturnType<typeof instrumentDriver<EngineDriver<unknown>, CallGroup>>,
  revision: bigint,
): Promise<bigint> {
  const { opts, report, say } = ctx;
  const n = opts.incremental;
  const pop = { ...ctx.pop, xrayUsers: ctx.pop.xrayUsers + n };
  const upserts = Array.from({ length: n }, (_, i) =>
    desiredUser(pop, ctx.pop.xrayUsers + i, ctx.leaseExpiry),
  );
  const sec = "v2ray incremental changes (API path)";
  const diff = (to: bigint, add: typeof upserts, removals: string[]) =>
    applier.applyDiff({ toRevision: to, upserts: add, removals, usageCountedThroughSeq: 0n });
  say(`incremental: ${count(n)} users added to the running core by one diff (load ${load1()})`);
  const ids = upserts.map((u) => u.userId);
  for (const [label, method, run] of [
    ["add", "addUsers", () => diff(revision + 1n, upserts, [])],
    ["remove", "removeUsers", () => diff(revision + 2n, [], ids)],
  ] as const) {
    const t = performance.now();
    const outcome = await withProgress(ctx, () => `${count(ctx.grpc.total())} calls`, run);
    const whole = (performance.now() - t) / 1000;
    const m = xray.last.get(method);
    if (!m) continue;
    report.add({
      section: sec,
      item: `${label} ${count(n)} users × ${opts.inbounds.length} inbounds (driver.${method}, ${opts.concurrency} in flight)`,
      value: `${seconds(m.seconds)}, ${count(m.calls)} gRPC calls (${rate(m.calls, m.seconds)}), agent CPU ${seconds(m.agentCpu)} (${((m.agentCpu / Math.max(1, m.calls)) * 1e6).toFixed(0)} µs per call), v2ray CPU ${seconds(m.coreCpu)}; whole diff ${seconds(whole)}; failures ${outcome.failures.length}`,
    });
    if (label === "add") alterInboundRows(ctx, sec, m);
    if (outcome.failures.length > 0)
      report.fail(
        `incremental ${label}: ${outcome.failures.length} failures; first: ${outcome.failures[0]?.message}`,
      );
  }
  return revision + 2n;
}

async function mainPhases(ctx: Ctx): Promise<void> {
  const { opts, report, say, sampler, cleanup } = ctx;
  const agentDir = join(ctx.baseDir, "agent");
  const xrayDir = join(ctx.baseDir, "xray");
  const wgDir = join(ctx.baseDir, "wg");
  const netns = `${NETNS_PREFIX}${process.pid}`;
  const ifacePrefix = `vb${process.pid % 100_000}w`;

  sampler.phase("agent state");
  const state = await openNodeState({
    stateDir: agentDir,
    now: Date.now,
    maxSamples: () => 10_000,
    logger: ctx.logger,
  });
  const closeState = cleanup.add("agent state", () => state.close());

  // ---- slots (the daemon's order: xray, then wireguard)
  const slots: EngineSlot[] = [];
  const ports = {
    api: await freePort(),
    vless: await freePort(),
    vmess: await freePort(),
    trojan: await freePort(),
  };
  let xrayRaw: XrayDriver | null = null;
  let xray: ReturnType<typeof instrumentDriver<EngineDriver<unknown>, CallGroup>> | null = null;
  const xrayPid = async (): Promise<number | null> =>
    xrayRaw?.pid() ??
    (Number((await readFile(join(xrayDir, "v2ray4.pid"), "utf8").catch(() => "")).split(/\s+/)[0]) || null);
  const stopXray = cleanup.add("v2ray (main)", async () => {
    const pid = await xrayPid();
    await withTimeout(xrayRaw?.stop() ?? Promise.resolve(), 15_000, "v2ray stop").catch(() => undefined);
    if (await killIfOurs(pid, xrayDir)) say(`killed v2ray ${pid}`);
  });
  if (!opts.skipXray) {
    const slot = createXraySlot({
      flavor: "v2ray4",
      stateDir: xrayDir,
      local: { apiPort: ports.api, logLevel: "warning" },
      concurrency: opts.concurrency,
      logger: ctx.logger,
    });
    xrayRaw = slot.driver as unknown as XrayDriver;
    xray = instrumentDriver(slot.driver, XRAY_MEASURED, ctx.grpc, async () => {
      const pid = xrayRaw?.pid();
      return pid ? [pid] : [];
    });
    slots.push({ ...slot, driver: xray.driver });
  }

  let wg: ReturnType<typeof instrumentDriver<EngineDriver<unknown>, CommandGroup>> | null = null;
  let wgRaw: ReturnType<typeof createWireguardDriver> | null = null;
  const netnsPids = async (): Promise<number[]> => {
    const { stdout } = await run("ip", ["netns", "pids", netns]).catch(() => ({ stdout: "" }));
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  };
  let destroyWg: () => Promise<void> = async () => undefined;
  if (!opts.skipWg) {
    await createNetns(netns);
    const destroyNs = cleanup.add(`namespace ${netns}`, () => destroyNetns(netns, ifacePrefix));
    const runner = countingRunner(createRunner({ netns, timeoutMs: 300_000 }));
    const driver = createWireguardDriver({ stateDir: wgDir, logger: ctx.logger, runner, mode: "userspace" });
    wgRaw = driver;
    const destroyIfaces = cleanup.add("wireguard interfaces", () => driver.destroy());
    destroyWg = async () => {
      await destroyIfaces();
      await destroyNs();
    };
    wg = instrumentDriver(
      driver as unknown as EngineDriver<unknown>,
      ["start", "applySnapshot", "readUsage"],
      runner,
      netnsPids,
    );
    const local = {
      interfacePrefix: ifacePrefix,
      listenPort: WG_LISTEN_PORT,
      peersPerInterface: opts.peersPerInterface,
    };
    // createWireguardSlot with the counting runner (the daemon's slot builds its own runner).
    const wgSlot: EngineSlot = {
      kind: "wireguard",
      driver: wg.driver,
      baseConfig: (node) => wireguardBaseConfig(node, local),
      init: async () => undefined,
      capability: () => ({ engine: Engine.WIREGUARD, core: "wireguard-go", version: "", features: [] }),
      wireguardInterfaces: () => [],
      shutdown: async () => undefined,
    };
    slots.push(wgSlot);
  }

  // ---- the applier, with the store and lease persistence timed
  const persistence = { storeReplace: 0, leasesPersist: 0 };
  const store = new Proxy(state.store, {
    get(t, prop) {
      const value = Reflect.get(t, prop) as unknown;
      if (prop === "replace" && typeof value === "function") {
        return async (...args: unknown[]) => {
          const started = performance.now();
          try {
            return await (value as (...a: unknown[]) => Promise<void>).apply(t, args);
          } finally {
            persistence.storeReplace = (performance.now() - started) / 1000;
          }
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
  const leases = new Proxy(state.leases, {
    get(t, prop) {
      const value = Reflect.get(t, prop) as unknown;
      if (prop === "persist" && typeof value === "function") {
        return async (...args: unknown[]) => {
          const started = performance.now();
          try {
            return await (value as (...a: unknown[]) => Promise<void>).apply(t, args);
          } finally {
            persistence.leasesPersist = (performance.now() - started) / 1000;
          }
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
  const applier = createApplier({
    store,
    leases,
    slots,
    usage: state.pump,
    logger: ctx.logger,
    now: Date.now,
  });
  for (const slot of slots) await slot.init();

  const nodeConfig: NodeConfig = {
    xrayInboundsJson: opts.skipXray ? "" : inboundsJson(opts.inbounds, ports),
    wireguardInterfaces: opts.skipWg
      ? []
      : [{ name: "wg0", listenPort: WG_LISTEN_PORT, addresses: [NODE_ADDRESS], mtu: 0 }],
  };
  const xrayUsers = opts.skipXray ? 0 : opts.users;
  const wgPeers = opts.skipWg ? 0 : opts.wgPeers;
  const total = Math.max(xrayUsers, wgPeers);
  const checkpoint = (label: string) => {
    if (!opts.gcPhases) return;
    forceGc();
    const m = process.memoryUsage();
    report.add({
      section: "live heap (--gc-phases)",
      item: label,
      value: `${mb(m.heapUsed)} heap used + ${mb(m.external)} external; RSS ${mb(m.rss)}`,
    });
  };
  checkpoint("agent state opened, slots created, no users");

  // ---- 1. initial snapshot on an empty node
  sampler.phase("snapshot 1 receive");
  const rssBeforeSnapshot = process.memoryUsage().rss;
  let t = performance.now();
  let received = receiveSnapshot(ctx.pop, 1n, nodeConfig, ctx.leaseExpiry);
  const decode1 = (performance.now() - t) / 1000;
  checkpoint(`snapshot 1 received: ${count(total)} DesiredUsers assembled, nothing applied`);
  say(
    `snapshot 1: ${count(total)} users, ${mb(received.wireBytes)} on the wire, built+decoded in ${seconds(decode1)} (load ${load1()})`,
  );
  sampler.phase("snapshot 1 apply");
  t = performance.now();
  const outcome1 = await withProgress(
    ctx,
    () =>
      `${count(ctx.grpc.total())} gRPC calls so far, wg commands ${wgRaw ? "running" : "–"}, rss ${mb(process.memoryUsage().rss)}`,
    () => applier.applySnapshot(received.snapshot),
  );
  const apply1 = (performance.now() - t) / 1000;
  received = { snapshot: { ...received.snapshot, users: [] }, wireBytes: received.wireBytes };
  sampler.sample();
  checkpoint("snapshot 1 applied (desired store, leases, driver state; the snapshot's array released)");
  say(`snapshot 1 applied in ${seconds(apply1)}, ${outcome1.failures.length} failures (load ${load1()})`);
  const firstApply = {
    xray: xray?.last.get("applySnapshot")?.outcome,
    wg: wg?.last.get("applySnapshot")?.outcome,
  };
  if (outcome1.failures.length > 0) {
    report.fail(
      `initial snapshot: ${outcome1.failures.length} users not applied (reported as failures by the driver, retried by the next apply); first: ${outcome1.failures[0]?.userId} ${outcome1.failures[0]?.message}`,
    );
  }

  if (xray && xrayRaw) {
    const start = xray.last.get("start");
    const m = xray.last.get("applySnapshot");
    const sec = "v2ray full apply";
    // The daemon's path on a fresh node: the first snapshot starts the core with its users written
    // into the config (driver.start), and the applySnapshot that follows only confirms them.
    if (start && m) {
      const full = start.seconds + m.seconds;
      report.add({
        section: sec,
        item: `full apply = driver.start with ${count(xrayUsers)} users × ${opts.inbounds.length} inbounds preloaded + driver.applySnapshot`,
        value: `${seconds(full)} (agent CPU ${seconds(start.agentCpu + m.agentCpu)}, v2ray CPU ${seconds(start.coreCpu + m.coreCpu)})`,
        target: "≤ 30 s",
        ok: full <= 30,
      });
    }
    if (start)
      report.add({
        section: sec,
        item: "└ driver.start: config written with every user, spawn, config load, API ready",
        value: `${seconds(start.seconds)}, ${start.calls} gRPC calls`,
      });
    if (m) {
      const alter = [...m.groups]
        .filter(([k]) => k.startsWith("AlterInbound"))
        .reduce((n, [, g]) => n + g.calls, 0);
      report.add({
        section: sec,
        item: `└ driver.applySnapshot right after the start (diff against the preloaded registry)`,
        value: `${seconds(m.seconds)}, ${m.calls} gRPC calls`,
      });
      if (alter > 0) alterInboundRows(ctx, sec, m);
    }
    if (m?.outcome)
      report.add({
        section: sec,
        item: "apply result",
        value: `preloaded and confirmed ${count(m.outcome.unchanged)}, added through the API ${count(m.outcome.added)}, failed ${m.outcome.failed}${m.outcome.firstError ? ` (first: ${m.outcome.firstError})` : ""}`,
      });
    const status = xrayRaw.status();
    report.add({ section: sec, item: "driver registry after apply", value: `${count(status.users)} users` });
    const expected = m?.outcome ? m.outcome.added + m.outcome.unchanged : xrayUsers;
    if (status.users !== expected)
      report.fail(`xray registry holds ${status.users} users, but the start and apply gave ${expected}`);
    report.add({
      section: sec,
      item: "v2ray RSS after apply (core, not counted below)",
      value: mb(await procRss(xrayRaw.pid())),
    });
  }
  if (wg && wgRaw) {
    const start = wg.last.get("start");
    const m = wg.last.get("applySnapshot");
    const sec = "WireGuard full apply";
    if (start) {
      report.add({
        section: sec,
        item: "driver start (interface 0: wireguard-go, key, address, up)",
        value: seconds(start.seconds),
      });
    }
    if (m) {
      report.add({
        section: sec,
        item: `driver.applySnapshot: ${count(wgPeers)} peers (with PSK), ≤ ${count(opts.peersPerInterface)} per interface`,
        value: seconds(m.seconds),
        target: "≤ 15 s",
        ok: m.seconds <= 15,
      });
      report.add({
        section: sec,
        item: "CPU during the apply: agent process / wireguard-go",
        value: `${m.agentCpu.toFixed(1)} s / ${m.coreCpu.toFixed(1)} s; wg + ip commands ${m.childCpu.toFixed(1)} s`,
      });
      commandRows(ctx, sec, m);
    }
    if (m?.outcome)
      report.add({
        section: sec,
        item: "apply result",
        value: `added ${count(m.outcome.added)}, failed ${m.outcome.failed}${m.outcome.firstError ? ` (first: ${m.outcome.firstError})` : ""}`,
      });
    const ifaces = wgRaw.interfaces();
    report.add({
      section: sec,
      item: "interfaces (peers each)",
      value: ifaces.map((i) => `${i.name}: ${count(i.peers)}`).join(", "),
    });
    const peers = ifaces.reduce((n, i) => n + i.peers, 0);
    if (peers !== wgPeers) report.fail(`wireguard holds ${peers} peers, expected ${wgPeers}`);
    let coreRss = 0;
    for (const pid of await netnsPids()) coreRss += await procRss(pid);
    report.add({
      section: sec,
      item: "wireguard-go RSS, all interfaces (cores, not counted below)",
      value: mb(coreRss),
    });
  }
  report.add({
    section: "agent apply path",
    item: `applier.applySnapshot, whole (engine starts + both applies + desired store + leases)`,
    value: seconds(apply1),
  });
  report.add({
    section: "agent apply path",
    item: `└ desired store replace (${count(total)} users, fsync) / leases persist`,
    value: `${seconds(persistence.storeReplace)} / ${seconds(persistence.leasesPersist)}`,
  });
  report.add({
    section: "agent apply path",
    item: `snapshot receive (bench-side: ${Math.ceil(total / 1000)} chunks encoded + decoded + assembled)`,
    value: `${seconds(decode1)}, ${mb(received.wireBytes)}`,
  });

  // ---- 2. reconnect: the same desired state, received again
  sampler.phase("snapshot 2 receive");
  received = receiveSnapshot(ctx.pop, 2n, nodeConfig, ctx.leaseExpiry);
  sampler.phase("snapshot 2 apply");
  t = performance.now();
  const outcome2 = await applier.applySnapshot(received.snapshot);
  const apply2 = (performance.now() - t) / 1000;
  received = { snapshot: { ...received.snapshot, users: [] }, wireBytes: received.wireBytes };
  say(`snapshot 2 (unchanged) applied in ${seconds(apply2)} (load ${load1()})`);
  checkpoint("snapshot 2 (unchanged) applied, the first one's users replaced");
  if (outcome2.failures.length > 0)
    report.fail(
      `reconnect snapshot: ${outcome2.failures.length} users not applied; first: ${outcome2.failures[0]?.userId} ${outcome2.failures[0]?.message}`,
    );
  const reconnect = "unchanged reconnect";
  for (const [label, probe, unit, users, first] of [
    ["v2ray", xray, "gRPC calls", xrayUsers, firstApply.xray],
    ["WireGuard", wg, "commands", wgPeers, firstApply.wg],
  ] as const) {
    const m = probe?.last.get("applySnapshot");
    if (!m) continue;
    const o = m.outcome;
    // Users whose first apply failed are not in the driver's registry: the reconnect retries them,
    // as designed. Everything else must be left alone.
    const retried = first?.failed ?? 0;
    const changes = o ? o.added + o.updated + o.removed : -1;
    report.add({
      section: reconnect,
      item: `${label} driver.applySnapshot (same ${count(users)} users)`,
      value: `${seconds(m.seconds)} (agent CPU ${seconds(m.agentCpu)}), ${m.calls} ${unit}${o ? `; unchanged ${count(o.unchanged)}, re-applied ${changes}` : ""}${retried > 0 ? ` (retrying the ${retried} users whose first apply failed${o ? `: ${changes} re-added, ${o.failed} failed again` : ""})` : ""}`,
      target: "< 1 s, 0 calls",
      ok: m.seconds < 1 && m.calls === 0,
    });
    if (retried === 0 && (m.calls !== 0 || changes !== 0))
      report.fail(`unchanged ${label} snapshot made ${m.calls} ${unit} and re-applied ${changes} users`);
    if (retried > 0 && o && (o.unchanged !== users - retried || changes > retried))
      report.fail(
        `${label} reconnect: unchanged ${o.unchanged}, re-applied ${changes}; expected only the ${retried} failed users`,
      );
  }
  report.add({
    section: reconnect,
    item: "applier.applySnapshot, whole (incl. desired store rewrite + leases)",
    value: `${seconds(apply2)} (store ${seconds(persistence.storeReplace)}, leases ${seconds(persistence.leasesPersist)})`,
  });

  // ---- 2b. incremental changes through the API on the running core
  if (xray && opts.incremental > 0) {
    sampler.phase("incremental (API)");
    await incrementalPhase(ctx, applier, xray, 2n);
    checkpoint(`incremental ${count(opts.incremental)} added and removed again`);
  }

  // ---- 3. usage
  const ackAll = async () => {
    for (const batch of state.queue.pending()) await state.pump.ack(batch.seq);
  };
  const tick = async (label: string) => {
    // The agent's tickUsage: every started engine sampled, then local lease enforcement (offline
    // mode, so the whole lease book is checked); batches are acked afterwards as a collector would.
    const started = performance.now();
    const parts: string[] = [];
    for (const rt of applier.slots) {
      if (!rt.started) continue;
      const t0 = performance.now();
      await state.pump.sample(rt.slot);
      const probe = rt.slot.kind === "xray" ? xray : wg;
      const read = probe?.last.get("readUsage")?.seconds ?? 0;
      const total = (performance.now() - t0) / 1000;
      parts.push(
        `${rt.slot.kind} ${seconds(total)} = read ${seconds(read)} + record ${seconds(total - read)}`,
      );
    }
    const t1 = performance.now();
    const cut = await applier.enforceLeases(Date.now(), true);
    parts.push(`lease check ${seconds((performance.now() - t1) / 1000)}`);
    const sec = (performance.now() - started) / 1000;
    const pending = state.queue.pending();
    const samples = pending.reduce((n, b) => n + b.deltas.length, 0);
    await ackAll();
    say(`${label}: ${seconds(sec)} (${parts.join(", ")})`);
    return { sec, batches: pending.length, samples, cut: cut.length, parts: parts.join("; ") };
  };
  sampler.phase("usage (no traffic)");
  const idle = await tick("usage tick, no traffic yet");
  const usage = "usage poll";
  if (xray) {
    const m = xray.last.get("readUsage");
    const q = m?.groups.get("QueryStats user>>>");
    if (m)
      report.add({
        section: usage,
        item: `v2ray readUsage, ${count(xrayUsers)} users, 0 counters (nobody connected yet)`,
        value: `${seconds(m.seconds)}, reply ${q ? `${count(q.maxReplyBytes)} B` : "?"} (agent CPU ${seconds(m.agentCpu)})`,
      });
  }
  if (wg) {
    const m = wg.last.get("readUsage");
    if (m) {
      report.add({
        section: usage,
        item: `WireGuard readUsage (\`wg show dump\` of every interface, ${count(wgPeers)} peers)`,
        value: `${seconds(m.seconds)} (agent CPU ${seconds(m.agentCpu)}, wg CPU ${seconds(m.childCpu)})`,
      });
      commandRows(ctx, usage, m);
    }
  }
  report.add({
    section: usage,
    item: "agent usage tick (all engines: read + deltas + fsync'd queue append + lease check)",
    value: `${seconds(idle.sec)}, ${idle.batches} batches, ${count(idle.samples)} samples (${idle.parts})`,
  });

  if (xray && xrayRaw && opts.active > 0) {
    sampler.phase("traffic (child process)");
    const traffic = startTrafficChild((done) => say(`  … traffic: ${count(done)} connections`));
    const stopTraffic = cleanup.add("traffic child", () => traffic.kill());
    say(`traffic: one VLESS connection for each of ${count(opts.active)} users (load ${load1()})`);
    const v2cpu0 = await procCpuSeconds(xrayRaw.pid());
    const result = await traffic.run({
      population: ctx.pop,
      from: 0,
      count: opts.active,
      vlessPort: ports.vless,
      concurrency: opts.trafficConcurrency,
      bytes: opts.trafficBytes,
      echoServers: 8,
    });
    const v2cpu = (await procCpuSeconds(xrayRaw.pid())) - v2cpu0;
    await stopTraffic();
    report.add({
      section: usage,
      item: `traffic: 1 VLESS connection per user, ${opts.trafficBytes} B each way (child process)`,
      value: `${count(result.ok)} ok, ${result.failed} failed in ${seconds(result.seconds)} (${rate(result.ok, result.seconds)}), v2ray CPU ${v2cpu.toFixed(1)} s`,
    });
    if (result.failed > 0)
      report.note(
        `traffic: ${result.failed} of ${count(opts.active)} client connections failed (client timeout 15 s), first: ${result.firstError}; v2ray may still have counted them`,
      );
    await new Promise((r) => setTimeout(r, 1_000));
    sampler.phase("usage polls");
    for (let i = 1; i <= opts.polls; i++) {
      const tk = await tick(`usage tick ${i} with counters`);
      const m = xray.last.get("readUsage");
      const q = m?.groups.get("QueryStats user>>>");
      if (m) {
        report.add({
          section: usage,
          item: `v2ray readUsage #${i}, ${count(result.ok * 2)} user counters present`,
          value: `${seconds(m.seconds)} (QueryStats ${q ? `${ms(q.latency.max)} ms, reply ${mb(q.maxReplyBytes)}` : "?"}; agent CPU ${m.agentCpu.toFixed(2)} s)`,
        });
      }
      report.add({
        section: usage,
        item: `└ agent usage tick #${i} (all engines; ${i === 1 ? "every active user has new bytes" : "no new bytes"})`,
        value: `${seconds(tk.sec)}, ${tk.batches} batches, ${count(tk.samples)} samples (${tk.parts})`,
      });
    }
    // Correctness: every active user reads exactly its bytes, in both directions.
    const readings = await xrayRaw.readUsage();
    const exact = readings.filter((r) => r.up === opts.trafficBytes && r.down === opts.trafficBytes).length;
    report.add({
      section: usage,
      item: "check: readings with exactly the bytes sent, both directions",
      value: `${count(exact)} of ${count(result.ok)} connected users (${count(readings.length)} readings)`,
    });
    // A connection the client gave up on may still have gone through (or partly) inside v2ray.
    const inexact = readings.length - exact;
    if (exact < result.ok || inexact > result.failed)
      report.fail(
        `usage check: ${exact} exact and ${inexact} other readings for ${result.ok} completed connections`,
      );
    report.add({
      section: usage,
      item: "v2ray RSS after traffic (core)",
      value: mb(await procRss(xrayRaw.pid())),
    });
  }

  checkpoint("after the usage ticks (usage baselines held)");

  // ---- 4. memory of this (agent) process
  sampler.phase("end of main phases");
  const main = [...sampler.phases.keys()];
  const peak = sampler.peakOf(main);
  const mem = "agent RSS";
  report.add({
    section: mem,
    item: "baseline: node + tsx + the daemon's modules loaded, no state, no users",
    value: mb(ctx.baselineRss),
  });
  report.add({
    section: mem,
    item: "before the first snapshot (agent state opened, slots created)",
    value: mb(rssBeforeSnapshot),
  });
  for (const [name, p] of sampler.phases) {
    report.add({
      section: mem,
      item: `└ peak in phase "${name}"`,
      value: `${mb(p.peakRss)} (heap used ${mb(p.peakHeapUsed)}, external ${mb(p.peakExternal)}; ${p.samples} samples)`,
    });
  }
  report.add({
    section: mem,
    item: `peak RSS, sampled every 100 ms (${count(total)} users on ${slots.length} engine(s))`,
    value: mb(peak),
    target: "≤ 150 MB",
    ok: peak <= 150e6,
  });
  const maxRss = process.resourceUsage().maxRSS * 1024;
  report.add({
    section: mem,
    item: "peak RSS from the kernel (getrusage ru_maxrss, includes moments between samples)",
    value: mb(maxRss),
    target: "≤ 150 MB",
    ok: maxRss <= 150e6,
  });
  report.add({
    section: mem,
    item: `RSS at the end (steady state, ${count(total)} users held)`,
    value: mb(process.memoryUsage().rss),
  });
  // Diagnostic only (after everything was measured): how much of the RSS is live data.
  forceGc();
  const afterGc = process.memoryUsage();
  report.add({
    section: mem,
    item: "diagnostic: after a forced full GC at the end — live heap / RSS",
    value: `${mb(afterGc.heapUsed)} / ${mb(afterGc.rss)}`,
  });

  // ---- teardown of the main engines before any experiment
  say("stopping the main engines");
  await stopXray();
  await destroyWg();
  await closeState();
}

// ---------------------------------------------------------------------------------------------------
// Xray experiments (--extras): fresh core each, users straight into the driver

function xrayAgentUsers(p: Population, leaseExpiry: Date): AgentUser[] {
  const out: AgentUser[] = [];
  for (let i = 0; i < p.xrayUsers; i++) {
    const user = toAgentUser(desiredUser(p, i, leaseExpiry), "xray");
    if (user) out.push(user);
  }
  return out;
}

async function withFreshXray<T>(
  ctx: Ctx,
  name: string,
  inbounds: readonly InboundKind[],
  concurrency: number,
  body: (driver: XrayDriver, ports: Record<InboundKind, number> & { api: number }) => Promise<T>,
): Promise<T> {
  const dir = join(ctx.baseDir, `xray-${name}`);
  const ports = {
    api: await freePort(),
    vless: await freePort(),
    vmess: await freePort(),
    trojan: await freePort(),
  };
  const driver = createXrayDriver({ flavor: "v2ray4", stateDir: dir, logger: ctx.logger, concurrency });
  let pid: number | null = null;
  const stop = ctx.cleanup.add(`v2ray (${name})`, async () => {
    await withTimeout(driver.stop(), 15_000, "v2ray stop").catch(() => undefined);
    await killIfOurs(pid, dir);
  });
  try {
    await driver.start({
      apiPort: ports.api,
      logLevel: "warning",
      inbounds: parseXrayInbounds(inboundsJson(inbounds, ports)),
    });
    pid = driver.pid();
    return await body(driver, ports);
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function timedXrayApply(ctx: Ctx, driver: XrayDriver, users: readonly AgentUser[], label: string) {
  ctx.grpc.reset();
  const pid = driver.pid();
  const core0 = await procCpuSeconds(pid);
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const result = await withProgress(
    ctx,
    () => `${count(ctx.grpc.total())} calls`,
    () => driver.applySnapshot(users),
  );
  const sec = (performance.now() - started) / 1000;
  const first = result.failed[0];
  if (first) {
    ctx.report.note(`${label}: ${result.failed.length} users failed; first: ${first.userId}: ${first.error}`);
  }
  return {
    sec,
    result,
    calls: ctx.grpc.total(),
    agentCpu: selfCpuSeconds(cpu0),
    coreCpu: (await procCpuSeconds(pid)) - core0,
  };
}

async function extras(ctx: Ctx): Promise<void> {
  const { opts, report, say } = ctx;
  const sec = "v2ray experiments";
  ctx.sampler.phase("experiments");
  const users = xrayAgentUsers({ ...ctx.pop, xrayUsers: opts.extrasUsers }, ctx.leaseExpiry);

  if (opts.rawCeiling > 0) {
    // The same AlterInbound adds without the driver: through grpc-js (what the driver uses), then
    // through a bare node:http2 client — how much of the per-call cost is grpc-js itself.
    for (const client of ["grpc-js", "node:http2"] as const) {
      const n = Math.min(opts.rawCeiling, users.length);
      say(`raw ${client} ceiling: ${count(n)} AlterInbound adds, ${opts.concurrency} in flight`);
      await withFreshXray(
        ctx,
        `raw-${client.replace(":", "")}`,
        ["vless"],
        opts.concurrency,
        async (driver, ports) => {
          const address = `127.0.0.1:${ports.api}`;
          const grpcClients = Array.from({ length: client === "grpc-js" ? opts.rawChannels : 0 }, () =>
            createCoreApiClient(V2RAY4, address, { deadlineMs: 30_000 }),
          );
          const h2 = client === "node:http2" ? createH2Unary(address) : null;
          const path = methodPath(V2RAY4, "handler", "AlterInbound");
          try {
            const pid = driver.pid();
            const core0 = await procCpuSeconds(pid);
            const cpu0 = process.cpuUsage();
            const started = performance.now();
            let errors = 0;
            let firstError = "";
            await mapBounded(users.slice(0, n), opts.concurrency, async (u, i) => {
              const request = encodeAddUser(V2RAY4, tagOf("vless"), u.id, {
                protocol: "vless",
                id: u.xray?.uuid ?? "",
              });
              const call = h2
                ? h2.call(path, request)
                : (grpcClients[i % grpcClients.length] as (typeof grpcClients)[number]).alterInbound(request);
              await call.catch((error: unknown) => {
                errors++;
                firstError ||= error instanceof Error ? error.message : String(error);
              });
            });
            const s = (performance.now() - started) / 1000;
            const agentCpu = selfCpuSeconds(cpu0);
            report.add({
              section: sec,
              item: `raw ${client}: ${count(n)} AlterInbound (VLESS), ${opts.concurrency} in flight${client === "grpc-js" ? `, ${opts.rawChannels} channel(s)` : ""}, no driver`,
              value: `${seconds(s)}, ${rate(n, s)}, ${errors} errors; agent CPU ${agentCpu.toFixed(1)} s (${((agentCpu / n) * 1e6).toFixed(0)} µs/call), v2ray CPU ${((await procCpuSeconds(pid)) - core0).toFixed(1)} s`,
            });
            if (errors > 0) report.note(`raw ${client}: first error: ${firstError}`);
          } finally {
            for (const c of grpcClients) c.close();
            h2?.close();
          }
        },
      );
    }
  }

  if (opts.perInbound) {
    for (const kind of opts.inbounds) {
      say(`${kind} alone: ${count(users.length)} users`);
      await withFreshXray(ctx, `only-${kind}`, [kind], opts.concurrency, async (driver) => {
        const r = await timedXrayApply(ctx, driver, users, `${kind} alone`);
        report.add({
          section: sec,
          item: `${kind} inbound alone: applySnapshot ${count(users.length)} users, concurrency ${opts.concurrency}`,
          value: `${seconds(r.sec)}, ${rate(r.calls, r.sec)} calls, failed ${r.result.failed.length}; agent CPU ${r.agentCpu.toFixed(1)} s (${((r.agentCpu / Math.max(1, r.calls)) * 1e6).toFixed(0)} µs/call), v2ray CPU ${r.coreCpu.toFixed(1)} s`,
        });
      });
    }
  }

  for (const c of opts.tryConcurrency) {
    say(`concurrency ${c}: ${count(users.length)} users × ${opts.inbounds.length} inbounds`);
    await withFreshXray(ctx, `c${c}`, opts.inbounds, c, async (driver) => {
      const r = await timedXrayApply(ctx, driver, users, `concurrency ${c}`);
      report.add({
        section: sec,
        item: `driver concurrency ${c}: applySnapshot ${count(users.length)} users × ${opts.inbounds.length} inbounds`,
        value: `${seconds(r.sec)}, ${rate(r.calls, r.sec)} calls, failed ${r.result.failed.length}; agent CPU ${r.agentCpu.toFixed(1)} s (${((r.agentCpu / Math.max(1, r.calls)) * 1e6).toFixed(0)} µs/call), v2ray CPU ${r.coreCpu.toFixed(1)} s`,
        target: "≤ 30 s",
        ok: r.sec <= 30,
      });
    });
  }

  if (opts.preload) {
    await preloadExperiment(ctx, users, opts.inbounds);
    // VMess is what makes v2ray 4.x slow and big (see the notes): the same without it.
    const withoutVmess = opts.inbounds.filter((k) => k !== "vmess");
    if (withoutVmess.length > 0 && withoutVmess.length < opts.inbounds.length)
      await preloadExperiment(ctx, users, withoutVmess);
  }
}

/**
 * What a full apply on a freshly started core could cost if the users were written into the core's
 * config (clients arrays) instead of being added one AlterInbound call at a time: config write, core
 * start, API ready; then the last 1,000 users connect to prove they were loaded.
 */
async function preloadExperiment(
  ctx: Ctx,
  users: readonly AgentUser[],
  inbounds: readonly InboundKind[],
): Promise<void> {
  const { report, say } = ctx;
  const dir = join(ctx.baseDir, `xray-preload-${inbounds.join("-")}`);
  const ports = {
    api: await freePort(),
    vless: await freePort(),
    vmess: await freePort(),
    trojan: await freePort(),
  };
  const { mkdir, writeFile } = await import("node:fs/promises");
  await mkdir(dir, { recursive: true });
  say(`preload: ${count(users.length)} users × ${inbounds.join("+")} written into the v2ray config`);
  const started = performance.now();
  const config = buildCoreConfig(V2RAY4, {
    apiPort: ports.api,
    logLevel: "warning",
    inbounds: parseXrayInbounds(inboundsJson(inbounds, ports)),
  }) as { inbounds: Array<{ protocol: string; settings?: { clients?: unknown[] } }> };
  for (const inbound of config.inbounds) {
    if (!inbound.settings?.clients) continue;
    inbound.settings.clients = users.map((u) =>
      inbound.protocol === "trojan"
        ? { password: u.xray?.trojanPassword, email: u.id, level: 0 }
        : inbound.protocol === "vmess"
          ? { id: u.xray?.uuid, alterId: 0, email: u.id, level: 0 }
          : { id: u.xray?.uuid, email: u.id, level: 0 },
    );
  }
  const path = join(dir, "preload-config.json");
  const text = JSON.stringify(config);
  await writeFile(path, text);
  const written = (performance.now() - started) / 1000;
  const proc = spawn("v2ray", ["-config", path], { stdio: "ignore" });
  const stop = ctx.cleanup.add("v2ray (preload)", async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    }
  });
  try {
    // Poll the TCP port first: a grpc-js channel that failed to connect backs off for a whole second.
    while (!(await portOpen(ports.api))) {
      if (proc.exitCode !== null) throw new Error(`v2ray exited with ${proc.exitCode}`);
      if (performance.now() - started > 180_000) throw new Error("v2ray API port not open after 180 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    const api = createCoreApiClient(V2RAY4, `127.0.0.1:${ports.api}`, { deadlineMs: 2_000 });
    try {
      for (;;) {
        try {
          await api.sysStats();
          break;
        } catch {
          if (proc.exitCode !== null) throw new Error(`v2ray exited with ${proc.exitCode}`);
          if (performance.now() - started > 180_000) throw new Error("v2ray API not ready after 180 s");
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      api.close();
    }
    const ready = (performance.now() - started) / 1000;
    const rss = await procRss(proc.pid);
    const sample = Math.min(1_000, users.length);
    const traffic = startTrafficChild(() => undefined);
    const stopTraffic = ctx.cleanup.add("traffic child (preload)", () => traffic.kill());
    const result = await traffic.run({
      population: ctx.pop,
      from: users.length - sample,
      count: sample,
      vlessPort: ports.vless,
      concurrency: 32,
      bytes: 64,
      echoServers: 2,
    });
    await stopTraffic();
    report.add({
      section: "v2ray experiments",
      item: `preload ${count(users.length)} users × ${inbounds.join("+")} into the config, start v2ray, API ready`,
      value: `${seconds(ready)} (config ${mb(text.length)} built+written in ${seconds(written)}); v2ray RSS ${mb(rss)}; last ${sample} users connect: ${result.ok} ok`,
    });
    if (result.ok !== sample)
      report.note(
        `preload check: only ${result.ok}/${sample} preloaded users could connect (${result.firstError})`,
      );
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------

async function preflight(opts: Options): Promise<string[]> {
  const problems: string[] = [];
  const probe = (cmd: string, args: string[]) =>
    run(cmd, args).then(
      () => true,
      () => false,
    );
  if (!opts.skipXray && !(await probe("v2ray", ["-version"])))
    problems.push("v2ray is not installed (apt-get install v2ray)");
  if (!opts.skipWg) {
    if (process.getuid?.() !== 0)
      problems.push("the WireGuard part needs root (network namespace); use --skip-wg");
    if (!(await probe("wireguard-go", ["--version"]))) problems.push("wireguard-go is not installed");
    if (!(await probe("wg", ["--version"]))) problems.push("wg (wireguard-tools) is not installed");
  }
  return problems;
}

/** The V8 flags `vpnpanel agent` runs with (deploy/systemd/vpnpanel-agent.service, compose/node.yml). */
const PRODUCTION_NODE_FLAGS = ["--max-old-space-size=512"];

/** Runs this benchmark again in a child node started with the daemon's flags; resolves to its exit code. */
function rerunWithProductionFlags(): Promise<number> {
  const child = spawn(
    process.execPath,
    [...PRODUCTION_NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit" },
  );
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 130 : 1))));
}

export async function main(args: string[]): Promise<void> {
  let opts: Options;
  try {
    opts = parseArgs(args);
  } catch (error) {
    process.stderr.write(
      `bench agent: ${(error as Error).message}\n(see the header of bench/agent.ts for the options)\n`,
    );
    process.exitCode = 2;
    return;
  }
  // The agent's memory is measured in a process started as production starts it.
  if (opts.nodeFlags === "production" && !PRODUCTION_NODE_FLAGS.every((f) => process.execArgv.includes(f))) {
    process.exitCode = await rerunWithProductionFlags();
    return;
  }
  const t0 = performance.now();
  const say = (line: string) =>
    process.stderr.write(`[agent ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  const problems = await preflight(opts);
  if (problems.length > 0) {
    for (const p of problems) say(p);
    process.exitCode = 2;
    return;
  }
  const { versions } = await (async () => {
    const v2 = opts.skipXray
      ? ""
      : (await run("v2ray", ["-version"]).catch(() => ({ stdout: "" }))).stdout.split("\n")[0];
    const wgGo = opts.skipWg
      ? ""
      : (await run("wireguard-go", ["--version"]).catch(() => ({ stdout: "" }))).stdout
          .split("\n")[0]
          ?.trim();
    return { versions: [v2, wgGo].filter(Boolean).join("; ") };
  })();

  // Load the daemon's whole module graph first, so the baseline RSS is the daemon's, not a subset.
  await import("@vpnpanel/node-agent");
  const grpc = installGrpcRecorder();
  const sampler = new RssSampler();
  sampler.start(100);
  const report = new Report();
  const cleanup = new Cleanup();
  const baseDir = join(tmpdir(), `${STATE_PREFIX}${process.pid}`);
  cleanup.add("state directory", () => rm(baseDir, { recursive: true, force: true }));
  const logger = pino({ level: opts.logLevel, base: { bench: "agent" } }, pino.destination(2));

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${signal}: cleaning up`);
    void cleanup.runAll(say).finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const loadStart = loadavg();
  try {
    await sweepStaleRuns(say);
    const pop: Population = {
      seed: Date.now().toString(36).slice(-10).padStart(10, "0"),
      xrayUsers: opts.skipXray ? 0 : opts.users,
      wgPeers: opts.skipWg ? 0 : opts.wgPeers,
      poolNetwork: parseIpv4(POOL),
      firstOffset: opts.wgFirstOffset,
    };
    const ctx: Ctx = {
      opts,
      say,
      logger,
      grpc,
      sampler,
      cleanup,
      report,
      baseDir,
      pop,
      leaseExpiry: new Date(Date.now() + 30 * 86_400_000),
      baselineRss: process.memoryUsage().rss,
    };
    say(
      `users ${count(pop.xrayUsers)} (v2ray) / ${count(pop.wgPeers)} (WireGuard), load ${loadStart.map((l) => l.toFixed(2)).join(" ")}`,
    );
    if (opts.skipXray && opts.skipWg) say("nothing to do (--skip-xray and --skip-wg)");
    else await mainPhases(ctx);
    if (
      !opts.skipXray &&
      (opts.rawCeiling > 0 || opts.perInbound || opts.tryConcurrency.length > 0 || opts.preload)
    )
      await extras(ctx);
  } catch (error) {
    report.fail(
      `benchmark aborted: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  } finally {
    sampler.stop();
    await cleanup.runAll(say);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const loadEnd = loadavg();
  report.note(
    "Method: one process is the agent — the daemon's own code (openNodeState, createApplier, createXraySlot / " +
      "createWireguardDriver); snapshots arrive as 1,000-user SnapshotChunks encoded and decoded from bytes and assembled " +
      "by the agent's SnapshotAssembler. The drivers are wrapped (Proxy) to time start/applySnapshot/readUsage and to count " +
      "the gRPC calls (grpc-js Client.prototype hook) and wg/ip commands (counting CommandRunner) each one makes.",
  );
  report.note(
    "RSS is this process only (process.memoryUsage().rss every 100 ms, plus getrusage's kernel peak); v2ray, wireguard-go, " +
      "the wg/ip commands and the traffic generator are separate processes and excluded. The process holds what the daemon " +
      "holds (desired store with 100k users, lease book, usage baselines, driver registries, the assembled snapshot " +
      "while it is applied) and no bench-only copy of the users; the tsx loader is included, as in the daemon (docs/adr/0002), " +
      "and so is any V8 flag this process was started with (" +
      (process.execArgv.filter((a) => a.startsWith("--max") || a.startsWith("--optimize")).join(" ") ||
        "none") +
      "). `vpnpanel agent` loads the same module graph (the CLI imports the control plane only for its own commands).",
  );
  report.note(
    "Usage: v2ray creates a user's counters at its first connection, so the 'with counters' polls follow one real VLESS " +
      "connection per active user (raw VLESS from a child process, echoed by local TCP servers). WireGuard peers carry no " +
      "traffic (no clients); a dump's size does not depend on the counter values. Usage batches are acked after each tick, " +
      "as a connected collector would.",
  );
  report.note(
    "WireGuard peers get consecutive pool addresses from offset --wg-first-offset (default 2; offset 1 is the node's " +
      "address), so with 50,000 per interface the placement rule (floor(offset / 50,000)) spills the last 2 peers onto a third interface.",
  );
  if (loadStart[0] !== undefined && loadStart[0] > 1)
    report.note(
      `The machine was busy: load average ${loadStart.map((l) => l.toFixed(2)).join(" ")} at the start, ${loadEnd.map((l) => l.toFixed(2)).join(" ")} at the end (2 cores, shared with other sessions). Figures are pessimistic; re-run on a quiet machine.`,
    );
  process.stdout.write(
    report.render([
      `# npm run bench -- agent ${args.join(" ")}`.trim(),
      "",
      `${new Date().toISOString()}, Node ${process.version}, ${versions}, total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    ]),
  );
  if (report.failures.length > 0) process.exitCode = 1;
}
