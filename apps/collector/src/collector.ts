import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { Registry } from "@vpnpanel/common";
import {
  type ControlPlane,
  consumeOutboxPage,
  type IngestResult,
  nodesServing,
  OUTBOX_NUDGE_CHANNEL,
  recordLastSeen,
} from "@vpnpanel/control";
import { enrollmentServerCredentials, nodeControlServerCredentials } from "@vpnpanel/pki";
import { EnrollmentService, NodeControlService } from "@vpnpanel/proto";
import { enrollmentHandlers, renewHandler } from "./enrollment-handlers";
import { createHub, type Hub } from "./hub";
import { createIngestQueue, type IngestHooks, type IngestQueue, type QueuedBatch } from "./ingest-queue";
import { type CollectorMetrics, createCollectorMetrics, perNodeGauges } from "./metrics";
import { handleSession, type LiveSession, type SessionSettings } from "./session";

// The collector role: NodeControl over mutual TLS and Enrollment over server TLS, on two gRPC servers
// (grpc-js registers services per server, so one server would expose NodeControl on the TLS-only
// port too). It also runs the "nodes" outbox consumer and the periodic checks of its sessions.
// Any number of collectors can run against one database and Redis; the hub routes changes to the
// one holding a node's stream.

export interface CollectorOptions {
  registry?: Registry;
  /** Overrides of COLLECTOR_HOST / COLLECTOR_PORT / ENROLL_PORT (tests bind port 0). */
  host?: string;
  port?: number;
  enrollPort?: number;
  collectorId?: string;
  hooks?: IngestHooks;
  /** Outbox poll interval (a pub/sub nudge wakes the consumer earlier). */
  pollIntervalMs?: number;
  /** Periodic session checks (revocation, revision drift, registry, gauges). */
  tickMs?: number;
  leaseRefreshMs?: number;
  session?: Partial<SessionSettings>;
}

export interface Collector {
  readonly collectorId: string;
  /** host:port of NodeControl (mTLS) and of Enrollment (TLS). */
  readonly address: string;
  readonly enrollAddress: string;
  readonly caPem: string;
  readonly hub: Hub;
  readonly ingest: IngestQueue;
  readonly metrics: CollectorMetrics;
  /** Runs the outbox consumer until it has nothing left (tests). */
  consumeOutbox(): Promise<number>;
  /** Graceful stop: commit and ack what is in flight, close every stream with DRAINING. */
  stop(graceMs?: number): Promise<void>;
}

const defaults: SessionSettings = {
  helloTimeoutMs: 15_000,
  snapshotChunkUsers: 1_000,
  diffMaxUsers: 5_000,
  commandMax: 64,
  maxInflightBatches: 16,
};

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (error, port) => (error ? reject(error) : resolve(port))),
  );
}

const hostPort = (host: string, port: number) =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

export async function startCollector(cp: ControlPlane, opts: CollectorOptions = {}): Promise<Collector> {
  const config = cp.config;
  const db = cp.database.db;
  const log = cp.log.child({ role: "collector" });
  const collectorId = opts.collectorId ?? `col_${hostname().slice(0, 20)}_${randomBytes(4).toString("hex")}`;
  const metrics = createCollectorMetrics(opts.registry ?? new Registry());
  const settings: SessionSettings = { ...defaults, ...opts.session };

  const ca = await cp.ca.get();
  const identity = await cp.ca.serverIdentity([config.COLLECTOR_PUBLIC_HOST, ...config.COLLECTOR_TLS_SANS]);
  await cp.trafficMaintenance
    .ensurePartitions()
    .catch((err) => log.warn({ err }, "could not create partitions"));

  const hub = createHub({ collectorId, cache: cp.coord.cache, bus: cp.nodeBus, log });
  await hub.start();

  function afterIngest(result: IngestResult, items: readonly QueuedBatch[]) {
    if (result.revisions.size > 0) {
      const cut = new Set(result.cutOff);
      const arrived = new Map<string, number>();
      for (const item of items) {
        for (const s of item.batch.samples) {
          if (cut.has(s.userId) && (arrived.get(s.userId) ?? 0) < item.arrivedAt)
            arrived.set(s.userId, item.arrivedAt);
        }
      }
      const enforcement: Record<string, number> = {};
      for (const c of result.changes) {
        const at = arrived.get(c.subscriptionId);
        if (c.op === "remove" && at !== undefined) enforcement[`${c.nodeId}|${c.subscriptionId}`] = at;
      }
      void hub.dispatch({ type: "changed", nodeIds: [...result.revisions.keys()], enforcement });
    }
    if (result.leaseChanged.length > 0) void dispatchLeases(result.leaseChanged);
  }

  async function dispatchLeases(subscriptionIds: string[]) {
    const serving = await nodesServing(db, subscriptionIds).catch(() => new Map<string, string[]>());
    for (const [nodeId, subs] of serving)
      await hub.dispatch({ type: "leases", nodeIds: [nodeId], subscriptionIds: subs });
  }

  const ingest = createIngestQueue({
    ingestor: cp.ingestor,
    concurrency: config.INGEST_CONCURRENCY,
    maxGroupSamples: config.INGEST_GROUP_MAX_SAMPLES,
    log,
    metrics,
    onCommitted: afterIngest,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
  });

  const sessionDeps = { cp, hub, ingest, metrics, collectorId, settings };
  const serverOptions = {
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": 32 * 1024 * 1024,
  };
  const nodeControl = new grpc.Server(serverOptions);
  nodeControl.addService(NodeControlService, {
    renewCertificate: renewHandler(cp, metrics),
    session: (call: Parameters<typeof handleSession>[0]) => handleSession(call, sessionDeps),
  });
  const enrollment = new grpc.Server({ "grpc.max_receive_message_length": 64 * 1024 });
  enrollment.addService(EnrollmentService, enrollmentHandlers(cp, metrics));

  const host = opts.host ?? config.COLLECTOR_HOST;
  const port = await bind(
    nodeControl,
    hostPort(host, opts.port ?? config.COLLECTOR_PORT),
    nodeControlServerCredentials({ ...identity, caPem: ca.certPem }),
  );
  const enrollPort = await bind(
    enrollment,
    hostPort(host, opts.enrollPort ?? config.ENROLL_PORT),
    enrollmentServerCredentials(identity),
  );
  const shownHost = host === "0.0.0.0" || host === "::" ? config.COLLECTOR_PUBLIC_HOST : host;

  // Loops that run every few hundred ms would log a database outage on every round.
  const lastWarned = new Map<string, number>();
  const warnEvery10s = (message: string, err: unknown) => {
    if (Date.now() - (lastWarned.get(message) ?? 0) < 10_000) return;
    lastWarned.set(message, Date.now());
    log.warn({ err: err instanceof Error ? err.message : String(err) }, message);
  };

  // ---- the "nodes" outbox consumer: poll plus nudge ----
  let stopping = false;
  let consuming: Promise<number> | null = null;
  let pollTimer: NodeJS.Timeout | undefined;
  const pollMs = opts.pollIntervalMs ?? 150;

  async function consumeAll(): Promise<number> {
    let total = 0;
    for (;;) {
      const step = await consumeOutboxPage(db);
      total += step.events;
      metrics.outboxEvents.inc(step.events);
      if (step.revisions.size > 0)
        await hub.dispatch({ type: "changed", nodeIds: [...step.revisions.keys()] });
      if (step.leaseSubscriptions.length > 0) await dispatchLeases(step.leaseSubscriptions);
      if (step.events < 500) return total;
    }
  }
  function consumeOnce(): Promise<number> {
    consuming ??= consumeAll()
      .catch((err) => {
        warnEvery10s("outbox consumer step failed", err);
        return 0;
      })
      .finally(() => {
        consuming = null;
      });
    return consuming;
  }
  const schedulePoll = () => {
    if (stopping) return;
    pollTimer = setTimeout(() => void consumeOnce().finally(schedulePoll), pollMs);
  };
  schedulePoll();
  const unsubscribeNudge = await cp.coord.pubsub.subscribe(OUTBOX_NUDGE_CHANNEL, () => void consumeOnce());

  // ---- periodic checks of the sessions held here ----
  const tickMs = opts.tickMs ?? 5_000;
  const leaseRefreshMs = opts.leaseRefreshMs ?? 60_000;
  let ticks = 0;
  let lastLeaseRefresh = cp.clock.now();
  const knownRevisions = new Map<string, bigint>();
  const live = () => [...hub.sessions.values()] as LiveSession[];

  async function tick() {
    ticks++;
    const sessions = live();
    const ids = sessions.map((s) => s.nodeId);
    // A notification lost in transit delays a change by one tick, never longer.
    const revisions = await cp.desired.revisions(ids);
    for (const s of sessions) {
      const rev = revisions.get(s.nodeId);
      if (rev !== undefined && knownRevisions.get(s.nodeId) !== rev) {
        knownRevisions.set(s.nodeId, rev);
        s.push();
      }
    }
    for (const id of knownRevisions.keys()) if (!hub.sessions.has(id)) knownRevisions.delete(id);
    // Revocation of a live session (pub/sub is the fast path; this is the guarantee).
    const revoked = await cp.enrollment.revokedAmong(sessions.map((s) => s.serialHex));
    const now = cp.clock.now().getTime();
    for (const s of sessions) {
      if (revoked.has(s.serialHex)) s.close("revoked", "the node's certificate was revoked");
      else if (s.notAfter.getTime() - now < 86_400_000) s.closeForRenewal();
    }
    // last_seen, degraded, usage lag.
    const degradedMs = config.NODE_DEGRADED_AFTER_SECONDS * 1000;
    for (const s of sessions) {
      const labels = { node_id: s.nodeId };
      metrics.nodeLastSeen.set(labels, Math.floor(s.lastSeen / 1000));
      metrics.nodeDegraded.set(labels, now - s.lastSeen > degradedMs ? 1 : 0);
      if (s.lastSampledAt !== null)
        metrics.nodeUsageLag.set(labels, Math.max(0, (now - s.lastSampledAt) / 1000));
    }
    if (sessions.length > 0 && ticks % 2 === 0) {
      await recordLastSeen(
        db,
        sessions.map((s) => ({ nodeId: s.nodeId, at: new Date(s.lastSeen) })),
      );
    }
    if (ticks % 4 === 0) await hub.refreshRegistry();
    if (cp.clock.now().getTime() - lastLeaseRefresh.getTime() >= leaseRefreshMs) {
      const since = lastLeaseRefresh;
      lastLeaseRefresh = cp.clock.now();
      // Spread over half the period: all sessions at once is a burst of one heavy query per node
      // that delays every ingest transaction and (through each session's serial queue) its removals
      // by a second or more. A later query only widens the window (`since` stays), so nothing is missed.
      const spacing = sessions.length > 1 ? leaseRefreshMs / 2 / sessions.length : 0;
      sessions.forEach((s, i) => {
        const refresh = () => {
          if (!stopping && hub.sessions.get(s.nodeId) === s) s.refreshLeases(since);
        };
        if (i === 0) refresh();
        else setTimeout(refresh, i * spacing).unref();
      });
    }
  }
  let tickTimer: NodeJS.Timeout | undefined;
  const scheduleTick = () => {
    if (stopping) return;
    tickTimer = setTimeout(
      () =>
        void tick()
          .catch((err) => warnEvery10s("collector tick failed", err))
          .finally(scheduleTick),
      tickMs,
    );
  };
  scheduleTick();

  log.info({ collector_id: collectorId, port, enroll_port: enrollPort }, "collector listening");

  return {
    collectorId,
    address: hostPort(shownHost, port),
    enrollAddress: hostPort(shownHost, enrollPort),
    caPem: ca.certPem,
    hub,
    ingest,
    metrics,
    consumeOutbox: async () => {
      let total = 0;
      for (;;) {
        const n = await consumeOnce();
        total += n;
        if (n === 0) return total;
      }
    },
    async stop(graceMs = config.SHUTDOWN_GRACE_SECONDS * 1000) {
      if (stopping) return;
      stopping = true;
      const stopStarted = Date.now();
      clearTimeout(pollTimer);
      clearTimeout(tickTimer);
      await unsubscribeNudge().catch(() => {});
      enrollment.forceShutdown();
      // In-flight batches commit and are acked before the streams close; then every agent is told
      // to reconnect (to this replica after a restart, or another one).
      for (const s of live()) s.quiesce();
      await ingest.drain(graceMs);
      await consuming;
      for (const s of live()) s.close("draining", "the collector is shutting down");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            nodeControl.forceShutdown();
            resolve();
          },
          Math.max(1000, graceMs / 2),
        );
        nodeControl.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await hub.stop();
      for (const g of perNodeGauges(metrics)) g.reset();
      log.info({ ms: Date.now() - stopStarted, sessions: live().length }, "collector stopped");
    },
  };
}
