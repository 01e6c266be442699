// Engine-side helpers for `npm run bench -- agent`: the inbounds the benchmark node serves, a Proxy that
// times a driver's methods together with the calls/commands they cause and the CPU they cost on both
// sides, the snapshot as the daemon receives it (SnapshotChunks decoded from bytes and assembled by the
// agent's own assembler), and the usage-traffic child process.

import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ApplyResult } from "@vpnpanel/node-agent/engines/types";
import type { AssembledSnapshot } from "@vpnpanel/node-agent/session/snapshot-assembler";
import { createSnapshotAssembler } from "@vpnpanel/node-agent/session/snapshot-assembler";
import { ControlMessage, type NodeConfig } from "@vpnpanel/proto";
import { childrenCpuSeconds, procCpuSeconds, selfCpuSeconds } from "./instrument";
import type { TrafficProgress, TrafficRequest, TrafficResult } from "./traffic";
import { desiredUser, type Population } from "./users";

export type InboundKind = "vless" | "vmess" | "trojan";
export const INBOUND_KINDS: readonly InboundKind[] = ["vless", "vmess", "trojan"];
export const tagOf = (kind: InboundKind) => `${kind}-in`;

/** The node's inbounds as the control plane renders them into NodeConfig.xray_inbounds_json. */
export function inboundsJson(
  kinds: readonly InboundKind[],
  ports: Readonly<Record<InboundKind, number>>,
): string {
  const stream = { network: "tcp", security: "none" };
  return JSON.stringify(
    kinds.map((kind) => ({
      tag: tagOf(kind),
      listen: "127.0.0.1",
      port: ports[kind],
      protocol: kind,
      settings: kind === "vless" ? { decryption: "none" } : {},
      streamSettings: stream,
    })),
  );
}

// ---------------------------------------------------------------------------------------------------

export interface Counter<G> {
  reset(): void;
  total(): number;
  groups(): Map<string, G>;
}

export interface Measured<G> {
  seconds: number;
  /** gRPC calls (Xray) or commands (WireGuard) made during the call. */
  calls: number;
  groups: Map<string, G>;
  /** CPU seconds of this (agent) process during the call. */
  agentCpu: number;
  /** CPU seconds of the core processes (v2ray / wireguard-go) during the call. */
  coreCpu: number;
  /** CPU seconds of the short-lived commands (wg, ip) this process ran and reaped during the call. */
  childCpu: number;
  /** Counts of an ApplyResult (applySnapshot); the id lists themselves are not kept. */
  outcome?: ApplyCounts;
}

export interface ApplyCounts {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  failed: number;
  firstError: string | null;
}

function applyCounts(value: unknown): ApplyCounts | undefined {
  const r = value as Partial<ApplyResult> | null;
  if (!r || !Array.isArray(r.added) || !Array.isArray(r.failed)) return undefined;
  const first = r.failed[0];
  return {
    added: r.added.length,
    updated: r.updated?.length ?? 0,
    removed: r.removed?.length ?? 0,
    unchanged: r.unchanged ?? 0,
    failed: r.failed.length,
    firstError: first ? `${first.userId}: ${first.error}` : null,
  };
}

async function cpuOf(pids: readonly number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const pid of pids) out.set(pid, await procCpuSeconds(pid));
  return out;
}

/**
 * Wraps a driver so each call of `methods` is measured; the latest measurement per method is in
 * `last`. The wrapped object is what the agent's applier and usage pump get, so they are unchanged.
 */
export function instrumentDriver<T extends object, G>(
  target: T,
  methods: readonly string[],
  counter: Counter<G>,
  corePids: () => Promise<number[]>,
): { driver: T; last: Map<string, Measured<G>> } {
  const last = new Map<string, Measured<G>>();
  const driver = new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop) as unknown;
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop !== "string" || !methods.includes(prop)) return fn.bind(t);
      return async (...args: unknown[]) => {
        const before = await cpuOf(await corePids());
        const children0 = await childrenCpuSeconds();
        counter.reset();
        const cpu0 = process.cpuUsage();
        const started = performance.now();
        let outcome: ApplyCounts | undefined;
        try {
          const value = await fn.apply(t, args);
          outcome = applyCounts(value);
          return value;
        } finally {
          const seconds = (performance.now() - started) / 1000;
          const agentCpu = selfCpuSeconds(cpu0);
          const calls = counter.total();
          const groups = counter.groups();
          const childCpu = (await childrenCpuSeconds()) - children0;
          const after = await cpuOf(await corePids());
          let coreCpu = 0;
          for (const [pid, cpu] of after) coreCpu += cpu - (before.get(pid) ?? 0);
          last.set(prop, {
            seconds,
            calls,
            groups,
            agentCpu,
            coreCpu,
            childCpu,
            ...(outcome ? { outcome } : {}),
          });
        }
      };
    },
  });
  return { driver, last };
}

// ---------------------------------------------------------------------------------------------------

export const SNAPSHOT_CHUNK_USERS = 1_000; // the collector's snapshotChunkUsers

/**
 * The snapshot as the agent's session would hand it to the applier: chunks of 1,000 users encoded as
 * ControlMessages, decoded from the bytes, and assembled by the agent's SnapshotAssembler. Builds one
 * chunk at a time so no second copy of the user set exists besides the assembled one.
 */
export function receiveSnapshot(
  p: Population,
  revision: bigint,
  nodeConfig: NodeConfig,
  leaseExpiry: Date,
): { snapshot: AssembledSnapshot; wireBytes: number } {
  const assembler = createSnapshotAssembler();
  const total = Math.max(p.xrayUsers, p.wgPeers);
  let wireBytes = 0;
  for (let index = 0; ; index++) {
    const from = index * SNAPSHOT_CHUNK_USERS;
    const to = Math.min(total, from + SNAPSHOT_CHUNK_USERS);
    const users = [];
    for (let i = from; i < to; i++) users.push(desiredUser(p, i, leaseExpiry));
    const bytes = ControlMessage.encode({
      body: {
        $case: "snapshot",
        value: {
          revision,
          chunkIndex: index,
          last: to >= total,
          users,
          ...(index === 0 ? { nodeConfig } : {}),
          usageCountedThroughSeq: 0n,
        },
      },
    }).finish();
    wireBytes += bytes.length;
    const body = ControlMessage.decode(bytes).body;
    if (body?.$case !== "snapshot") throw new Error("snapshot chunk did not round-trip");
    const outcome = assembler.add(body.value);
    if (outcome.kind === "complete") return { snapshot: outcome.snapshot, wireBytes };
    if (outcome.kind === "broken") throw new Error(`snapshot assembly broke: ${outcome.reason}`);
  }
}

// ---------------------------------------------------------------------------------------------------

/** Starts bench/agent/traffic.ts in a child process; `kill` is idempotent. */
export function startTrafficChild(onProgress: (done: number) => void): {
  child: ChildProcess;
  run(request: TrafficRequest): Promise<TrafficResult>;
  kill(): Promise<void>;
} {
  const child = fork(fileURLToPath(new URL("./traffic.ts", import.meta.url)), [], {
    // The same loader flags this process runs with (`node --import tsx`).
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return {
    child,
    run: (request) =>
      new Promise((resolve, reject) => {
        const onExit = (code: number | null, signal: string | null) =>
          reject(new Error(`traffic child exited (code ${code}, signal ${signal})`));
        child.once("exit", onExit);
        child.on("message", (message: TrafficProgress | TrafficResult) => {
          if (message.type === "progress") onProgress(message.done);
          else {
            child.off("exit", onExit);
            resolve(message);
          }
        });
        child.send(request);
      }),
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}
