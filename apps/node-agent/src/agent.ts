// The node agent: identity, engines, desired state, usage and the collector session, wired together.
// Time is injected (now, sleep, random) and every periodic job is a tick method, so tests drive the
// agent deterministically; `autoTick` schedules the ticks with real timers for the daemon.
//
// Start order matters: the stored desired state is applied to the engines before the first dial, so
// a restarted node serves its users even when no collector is reachable (offline lease).

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { ChannelOptions } from "@grpc/grpc-js";
import { VERSION } from "@vpnpanel/common";
import { clientCredentials } from "@vpnpanel/pki";
import type { AgentMessage, Policy } from "@vpnpanel/proto";
import type { Logger } from "pino";
import { type ControlHandler, createControlHandler } from "./control-handler";
import { type Applier, createApplier } from "./desired/applier";
import type { DesiredStore } from "./desired/desired-store";
import type { LeaseGuard } from "./enforcement/lease-guard";
import type { EngineSlot } from "./engine-slots";
import { createSerialLock, errorMessage } from "./engines/async-utils";
import { ensureIdentity, renewalDueAt, renewIdentity } from "./identity/enrollment";
import type { NodeIdentity } from "./identity/identity-store";
import { type NodeState, openNodeState } from "./node-state";
import type { BatchQueue } from "./queue/batch-queue";
import { buildHealthReport } from "./reporting/health";
import { type AgentMetrics, createAgentMetrics } from "./reporting/metrics";
import type { UsagePump } from "./reporting/usage-pump";
import type { BackoffPolicy } from "./session/backoff";
import {
  type Connection,
  type ConnectionOptions,
  type ConnectionState,
  createConnection,
} from "./session/connection";
import { startTicker, type Ticker } from "./ticker";

export interface AgentOptions {
  stateDir: string;
  addresses: readonly string[];
  enrollment: { address?: string; token?: string; caPem?: string; hostname: string };
  /** Name checked in the collector's certificate when the address is not in it. */
  tlsServerName?: string;
  slots: readonly EngineSlot[];
  logger: Logger;
  intervals: { usageSeconds: number; healthSeconds: number; maintenanceSeconds: number };
  backoff: BackoffPolicy;
  /** Share of the certificate's lifetime after which it is renewed (e.g. 0.67). */
  renewAtFraction: number;
  queue?: { maxBatches?: number; maxBytes?: number };
  /** Schedule the ticks with real timers (the daemon); tests call the tick methods instead. */
  autoTick: boolean;
  shutdownGraceMs: number;
  now?: () => number;
  random?: () => number;
  sleep?: ConnectionOptions["sleep"];
  onAttempt?: ConnectionOptions["onAttempt"];
  agentVersion?: string;
  bootId?: string;
  channelOptions?: ChannelOptions;
  metrics?: AgentMetrics;
}

export interface Agent {
  start(): Promise<void>;
  /** Final usage reading into the queue, a last flush, stream closed, engines shut down. */
  stop(): Promise<void>;
  tickUsage(): Promise<void>;
  tickHealth(): Promise<void>;
  tickMaintenance(): Promise<void>;
  /** Resolves when every control message received so far has been processed. */
  idle(): Promise<void>;
  identity(): NodeIdentity;
  appliedRevision(): bigint;
  sessionState(): ConnectionState;
  queue(): BatchQueue;
  leases(): LeaseGuard;
  policy(): Policy;
  metrics(): AgentMetrics;
  health(): Record<string, unknown>;
}

/** Policy.max_samples_per_batch = 0 means "agent default". */
const DEFAULT_MAX_SAMPLES = 10_000;

async function kernelBootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown")).trim();
}

export function createAgent(options: AgentOptions): Agent {
  const logger = options.logger;
  const now = options.now ?? Date.now;
  const withEngines = createSerialLock();
  const channelOptions: ChannelOptions = {
    // A dead link must be noticed without waiting for TCP: the lease clock depends on it.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.use_local_subchannel_pool": 1,
    ...(options.tlsServerName ? { "grpc.ssl_target_name_override": options.tlsServerName } : {}),
    ...options.channelOptions,
  };
  let policy: Policy = {
    usageIntervalSeconds: options.intervals.usageSeconds,
    healthIntervalSeconds: options.intervals.healthSeconds,
    maxSamplesPerBatch: 0,
    lastStoredUsageSeq: 0n,
    enforceLeasesOnline: false,
  };

  let identity: NodeIdentity | null = null;
  let queue: BatchQueue | null = null;
  let store: DesiredStore | null = null;
  let leases: LeaseGuard | null = null;
  let pump: UsagePump | null = null;
  let applier: Applier | null = null;
  let handler: ControlHandler | null = null;
  let connection: Connection | null = null;
  let metrics: AgentMetrics | null = options.metrics ?? null;
  let bootId = options.bootId ?? "";
  let online = false;
  /** The collector of the last established session (renewal goes there when no stream is up). */
  let lastAddress: string | null = null;
  let offlineSinceReport = true;
  let stopping = false;
  const tickers: { usage?: Ticker; health?: Ticker; maintenance?: Ticker } = {};
  let nodeState: NodeState | null = null;
  const ackWaiters = new Set<() => void>();

  const need = <T>(value: T | null, what: string): T => {
    if (value === null) throw new Error(`agent not started (${what})`);
    return value;
  };
  const enforcing = () => !online || policy.enforceLeasesOnline;

  function hello(): AgentMessage {
    const st = need(store, "store");
    return {
      body: {
        $case: "hello",
        value: {
          nodeId: need(identity, "identity").nodeId,
          agentVersion: options.agentVersion ?? VERSION,
          engines: options.slots.map((s) => s.capability()),
          appliedRevision: st.state.revision,
          wireguardInterfaces: options.slots.flatMap((s) => s.wireguardInterfaces()),
          bootId,
        },
      },
    };
  }

  async function enforceLeases(): Promise<void> {
    const cut = await withEngines(() => need(applier, "applier").enforceLeases(now(), enforcing()));
    if (cut.length > 0) metrics?.leaseCuts.inc(cut.length);
  }

  /** Single flight: the maintenance tick and a Close(RENEW_CERTIFICATE) may ask at the same time. */
  let renewing: Promise<void> | null = null;
  function renew(): Promise<void> {
    renewing ??= (async () => {
      const current = need(identity, "identity");
      const address = connection?.current()?.address ?? lastAddress ?? (options.addresses[0] as string);
      const next = await renewIdentity({ stateDir: options.stateDir, address, current, channelOptions });
      identity = next;
      logger.info({ notAfter: next.notAfter }, "node certificate renewed");
    })().finally(() => {
      renewing = null;
    });
    return renewing;
  }

  async function onPolicy(next: Policy): Promise<void> {
    const before = policy;
    policy = {
      ...next,
      usageIntervalSeconds: next.usageIntervalSeconds || options.intervals.usageSeconds,
      healthIntervalSeconds: next.healthIntervalSeconds || options.intervals.healthSeconds,
    };
    if (next.lastStoredUsageSeq > 0n) await need(queue, "queue").advanceSeq(Number(next.lastStoredUsageSeq));
    if (policy.usageIntervalSeconds !== before.usageIntervalSeconds) tickers.usage?.rearm();
    if (policy.healthIntervalSeconds !== before.healthIntervalSeconds) tickers.health?.rearm();
    logger.info(
      {
        usageIntervalSeconds: policy.usageIntervalSeconds,
        healthIntervalSeconds: policy.healthIntervalSeconds,
        enforceLeasesOnline: policy.enforceLeasesOnline,
      },
      "policy received",
    );
  }

  const agent: Agent = {
    async start() {
      const { identity: id } = await ensureIdentity({
        stateDir: options.stateDir,
        enrollAddress: options.enrollment.address,
        token: options.enrollment.token,
        caPem: options.enrollment.caPem,
        hostname: options.enrollment.hostname,
        agentVersion: options.agentVersion ?? VERSION,
        channelOptions,
        logger,
      });
      identity = id;
      bootId ||= `${await kernelBootId()}/${randomUUID()}`;
      const state = await openNodeState({
        stateDir: options.stateDir,
        now,
        maxSamples: () => policy.maxSamplesPerBatch || DEFAULT_MAX_SAMPLES,
        ...(options.queue ? { queue: options.queue } : {}),
        logger,
        onSent: () => metrics?.usageBatchesSent.inc(),
      });
      nodeState = state;
      const { queue: q, leases: lg, store: st, pump: p } = state;
      queue = q;
      leases = lg;
      store = st;
      pump = p;
      metrics ??= createAgentMetrics({
        queue: () => q.metrics(),
        sessionState: () => connection?.state() ?? "idle",
        appliedRevision: () => st.state.revision,
        engines: () =>
          options.slots.map((s) => {
            const status = s.driver.status();
            return { engine: s.kind, up: status.running, users: status.users, restarts: status.restarts };
          }),
        leases: () => ({ leased: lg.leaseCount(), cut: lg.cutCount() }),
      });
      const m = metrics;
      const a = createApplier({
        store: st,
        leases: lg,
        slots: options.slots,
        usage: p,
        logger,
        now,
        observe: (kind, seconds) => m.applySeconds.observe({ kind }, seconds),
      });
      applier = a;
      for (const slot of options.slots) {
        await slot.init();
        slot.driver.on("restarted", (event) => {
          if (event.failed.length > 0) a.markDirty();
        });
        slot.driver.on("crashed", (info) => logger.error(info, "engine crashed; its driver restarts it"));
      }
      const boot = await withEngines(() => a.boot());
      logger.info(
        {
          nodeId: id.nodeId,
          appliedRevision: String(st.state.revision),
          users: st.state.users.size,
          pendingUsageBatches: q.metrics().pendingBatches,
          failures: boot.failures.length,
        },
        "agent started",
      );
      handler = createControlHandler({
        applier: a,
        store: st,
        leases: lg,
        usage: p,
        withEngines,
        hello,
        onPolicy,
        onAck: () => {
          m.usageAcks.inc();
          if (q.metrics().pendingBatches === 0) for (const wake of ackWaiters) wake();
        },
        enforceLeases,
        now,
        logger,
      });
      const h = handler;
      connection = createConnection({
        addresses: options.addresses,
        credentials: () => {
          const current = need(identity, "identity");
          return clientCredentials({ ...current, caPem: current.caPem });
        },
        channelOptions,
        hello,
        onOpen: (session) => {
          online = true;
          lastAddress = session.address;
          m.sessionsEstablished.inc();
          h.sessionOpened();
          p.attach(session);
        },
        onMessage: (message, session) => h.handle(message, session),
        onEnd: (_end, session, established) => {
          if (established) logger.info({ address: session.address }, "session ended");
          online = false;
          offlineSinceReport = true;
          p.detach();
          h.sessionClosed();
        },
        onRenewRequested: renew,
        ...(options.onAttempt ? { onAttempt: options.onAttempt } : {}),
        backoff: options.backoff,
        ...(options.random ? { random: options.random } : {}),
        ...(options.sleep ? { sleep: options.sleep } : {}),
        logger,
      });
      connection.start();
      if (options.autoTick) {
        const onError = (error: unknown) => logger.error({ err: errorMessage(error) }, "periodic job failed");
        tickers.usage = startTicker(() => policy.usageIntervalSeconds * 1000, agent.tickUsage, onError);
        tickers.health = startTicker(() => policy.healthIntervalSeconds * 1000, agent.tickHealth, onError);
        tickers.maintenance = startTicker(
          () => options.intervals.maintenanceSeconds * 1000,
          agent.tickMaintenance,
          onError,
        );
      }
    },

    async tickUsage() {
      const a = need(applier, "applier");
      const p = need(pump, "pump");
      await withEngines(async () => {
        for (const rt of a.slots) if (rt.started) await p.sample(rt.slot);
      });
      await enforceLeases();
      await p.flush();
    },

    async tickHealth() {
      const session = connection?.current();
      if (!session) return;
      const report = buildHealthReport({
        now: now(),
        slots: need(applier, "applier").slots,
        sampleError: (kind) => need(pump, "pump").lastSampleError(kind),
        queue: need(queue, "queue").metrics(),
        wasOffline: offlineSinceReport,
        cutsSinceReport: need(leases, "leases").takeCutsSinceReport(),
      });
      offlineSinceReport = !online;
      await session.send({ body: { $case: "health", value: report } }).catch(() => undefined);
    },

    async tickMaintenance() {
      const current = need(identity, "identity");
      if (now() >= renewalDueAt(current, options.renewAtFraction)) {
        await renew().catch((error) =>
          logger.error(
            { err: errorMessage(error), notAfter: current.notAfter },
            "certificate renewal failed; retrying later",
          ),
        );
      }
      const a = need(applier, "applier");
      if (a.needsReconcile()) {
        const result = await withEngines(() => a.reconcile());
        if (result.failures.length > 0)
          logger.warn(
            { failures: result.failures.length, first: result.failures[0]?.message },
            "reconcile left failures",
          );
      }
      await enforceLeases();
      const session = connection?.current();
      if (session) await need(handler, "handler").retryResync(session);
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      for (const ticker of Object.values(tickers)) ticker.stop();
      await handler?.idle();
      const a = applier;
      const p = pump;
      const q = queue;
      if (a && p) {
        // The final reading: usage up to this moment is on disk before anything stops.
        await withEngines(async () => {
          for (const rt of a.slots) if (rt.started) await p.sample(rt.slot);
        }).catch((error) => logger.error({ err: errorMessage(error) }, "final usage reading failed"));
        if (q && connection?.current() && q.metrics().pendingBatches > 0 && options.shutdownGraceMs > 0) {
          await p.flush();
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, options.shutdownGraceMs);
            function done() {
              clearTimeout(timer);
              ackWaiters.delete(done);
              resolve();
            }
            ackWaiters.add(done);
          });
        }
      }
      await connection?.stop();
      await withEngines(async () => a?.shutdown());
      await nodeState?.close();
      logger.info({ pendingUsageBatches: q?.metrics().pendingBatches ?? 0 }, "agent stopped");
    },

    idle: async () => {
      await handler?.idle();
    },
    identity: () => need(identity, "identity"),
    appliedRevision: () => need(store, "store").state.revision,
    sessionState: () => connection?.state() ?? "idle",
    queue: () => need(queue, "queue"),
    leases: () => need(leases, "leases"),
    policy: () => policy,
    metrics: () => need(metrics, "metrics"),
    health: () => ({
      nodeId: identity?.nodeId ?? null,
      session: connection?.state() ?? "idle",
      collector: connection?.current()?.address ?? null,
      appliedRevision: String(store?.state.revision ?? 0n),
      usageQueue: queue?.metrics() ?? null,
      engines: (applier?.slots ?? []).map((rt) => ({
        engine: rt.slot.kind,
        started: rt.started,
        error: rt.startError,
        users: rt.slot.driver.status().users,
      })),
      leases: leases ? { leased: leases.leaseCount(), cut: leases.cutCount() } : null,
      certificateNotAfter: identity?.notAfter.toISOString() ?? null,
    }),
  };
  return agent;
}
