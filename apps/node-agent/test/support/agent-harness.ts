// Builds agents for the integration tests: a temp state dir, fake engines, an injected clock, an
// injected reconnect sleep (instant, or held until the test releases it), and no timers — the test
// calls the tick methods. `waitFor` waits for an event (a message arriving over real gRPC); it is
// never used to let time pass.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DesiredUser, Engine, type NodeConfig, type UserLease } from "@vpnpanel/proto";
import { pino } from "pino";
import { afterEach, beforeEach } from "vitest";
import { type Agent, createAgent } from "../../src/agent";
import type { EngineSlot } from "../../src/engine-slots";
import { type FakeCollector, type FakeSession, startFakeCollector } from "./fake-collector";
import { createFakeEngine, type FakeEngine } from "./fake-engine";

export const logger = pino({ level: process.env.TEST_LOG ?? "silent" });

export const NODE_CONFIG: NodeConfig = {
  xrayInboundsJson: JSON.stringify([{ tag: "vless-in", port: 443, protocol: "vless" }]),
  wireguardInterfaces: [{ name: "wg0", listenPort: 51820, addresses: ["10.8.0.1/16"], mtu: 0 }],
};

/** Deterministic per user id, so a test can rebuild the same desired user twice. */
function numberOf(userId: string): number {
  let h = 0;
  for (const ch of userId) h = (h * 31 + ch.charCodeAt(0)) % 60_000;
  return h + 1;
}

export function desiredUser(
  userId: string,
  options: {
    engines?: Array<"xray" | "wireguard">;
    lease?: UserLease;
    suspended?: boolean;
    uuid?: string;
    peer?: number;
  } = {},
): DesiredUser {
  const engines = options.engines ?? ["xray", "wireguard"];
  const n = options.peer ?? numberOf(userId);
  return {
    userId,
    email: userId,
    engines: engines.map((e) => (e === "xray" ? Engine.XRAY : Engine.WIREGUARD)),
    xray: engines.includes("xray")
      ? {
          uuid: options.uuid ?? `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
          trojanPassword: `trojan-${userId}`,
          shadowsocksPassword: `ss-${userId}`,
          vmessAlterId: 0,
          vlessFlow: "",
        }
      : undefined,
    wireguard: engines.includes("wireguard")
      ? {
          publicKey: `pk-${userId}`,
          presharedKey: "",
          allowedIps: [`10.8.${Math.floor(n / 250)}.${(n % 250) + 2}/32`],
          interface: "",
        }
      : undefined,
    lease: options.lease,
    suspended: options.suspended ?? false,
  };
}

export function manualClock(start = Date.now()) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Reconnect sleeps: recorded; resolved at once ("instant") or only when the test releases them. */
export function sleepControl(mode: "instant" | "held") {
  const waits: number[] = [];
  const held: Array<() => void> = [];
  return {
    waits,
    mode,
    sleep(ms: number, signal: AbortSignal): Promise<void> {
      waits.push(ms);
      return new Promise((resolve) => {
        if (mode === "instant" || signal.aborted) return setImmediate(resolve);
        held.push(resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    },
    release() {
      for (const resolve of held.splice(0)) resolve();
    },
    held: () => held.length,
  };
}

export async function waitFor(
  condition: () => boolean,
  what = "condition",
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function tempStateDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "agent-test-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestAgentOptions {
  collector: FakeCollector;
  dir: string;
  engines?: FakeEngine[];
  token?: string;
  clock?: ReturnType<typeof manualClock>;
  sleeps?: ReturnType<typeof sleepControl>;
  addresses?: string[];
  random?: () => number;
  onAttempt?: (event: { address: string } | { waitMs: number; next: string }) => void;
  shutdownGraceMs?: number;
}

export interface TestAgent {
  agent: Agent;
  xray: FakeEngine;
  wireguard: FakeEngine;
  clock: ReturnType<typeof manualClock>;
  sleeps: ReturnType<typeof sleepControl>;
}

export function createTestAgent(options: TestAgentOptions): TestAgent {
  const [xray, wireguard] = options.engines ?? [
    createFakeEngine("xray"),
    createFakeEngine("wireguard", { keepsUsersOnStart: true }),
  ];
  const clock = options.clock ?? manualClock();
  const sleeps = options.sleeps ?? sleepControl("instant");
  const slots: EngineSlot[] = [(xray as FakeEngine).slot, (wireguard as FakeEngine).slot];
  const agent = createAgent({
    stateDir: options.dir,
    addresses: options.addresses ?? options.collector.addresses,
    enrollment: {
      address: options.collector.enrollAddress,
      ...(options.token ? { token: options.token } : {}),
      caPem: options.collector.ca.certPem,
      hostname: "edge-test",
    },
    slots,
    logger,
    intervals: { usageSeconds: 10, healthSeconds: 30, maintenanceSeconds: 15 },
    backoff: { baseMs: 100, maxMs: 1_600 },
    renewAtFraction: 2 / 3,
    autoTick: false,
    shutdownGraceMs: options.shutdownGraceMs ?? 0,
    now: clock.now,
    random: options.random ?? (() => 0.5),
    sleep: sleeps.sleep,
    ...(options.onAttempt ? { onAttempt: options.onAttempt } : {}),
    bootId: "boot-test",
  });
  return { agent, xray: xray as FakeEngine, wireguard: wireguard as FakeEngine, clock, sleeps };
}

/** A collector with a token, and an agent enrolled against it and connected. */
export async function enrolledAgent(
  collector: FakeCollector,
  dir: string,
  extra: Partial<TestAgentOptions> = {},
) {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  collector.tokens.add(token);
  const t = createTestAgent({ collector, dir, token, ...extra });
  await t.agent.start();
  return t;
}

export function sumSamples(collector: FakeCollector, userId: string): { up: number; down: number } {
  return collector.totals().get(userId) ?? { up: 0, down: 0 };
}

/**
 * Per test: a fresh fake collector and state directory (from `beforeEach`); agents handed to `track`
 * have their held sleeps released and are stopped after the test, then both are removed.
 */
export function agentFixture() {
  const fx = {
    collector: undefined as unknown as FakeCollector,
    state: undefined as unknown as Awaited<ReturnType<typeof tempStateDir>>,
    running: [] as TestAgent[],
    async track<T extends TestAgent>(t: T | Promise<T>): Promise<T> {
      const agent = await t;
      fx.running.push(agent);
      return agent;
    },
    /** The collector's live session; throws when there is none. */
    session(): FakeSession {
      const s = fx.collector.active();
      if (!s) throw new Error("no active session");
      return s;
    },
  };
  beforeEach(async () => {
    fx.collector = await startFakeCollector();
    fx.state = await tempStateDir();
  });
  afterEach(async () => {
    for (const t of fx.running.splice(0)) {
      t.sleeps.release();
      await t.agent.stop().catch(() => undefined);
    }
    await fx.collector.close();
    await fx.state.remove();
  });
  return fx;
}
