import type { ServerDuplexStream } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import {
  type ControlPlane,
  type DesiredUserRecord,
  type HelloFacts,
  isPermanentIngestError,
  recordApplied,
  recordHealthReport,
  recordHelloFacts,
  recordSessionEnd,
  recordSessionStart,
  sessionNode,
} from "@vpnpanel/control";
import { authenticatePeer, PeerAuthError, type PeerIdentity } from "@vpnpanel/pki";
import {
  type Ack,
  type AgentMessage,
  CloseReason,
  type Command,
  type ControlMessage,
  type Hello,
  type UsageBatch,
} from "@vpnpanel/proto";
import type { Hub, SessionHandle } from "./hub";
import type { IngestQueue } from "./ingest-queue";
import {
  desiredUserToProto,
  engineName,
  engineStatusName,
  kindOf,
  leaseStateName,
  leaseToProto,
  nodeConfigToProto,
} from "./messages";
import { type CollectorMetrics, perNodeGauges } from "./metrics";

// One node's Session stream (ARCHITECTURE.md §5.2). Semantics, as documented in node_control.proto:
//
// Hello → authenticate (chain checked by TLS; revocation, validity and node id here) → Policy →
//   applied == current revision: nothing (the agent restarts nothing)
//   applied within the change log (>= floor, < current): one StateDiff(applied → current)
//   otherwise (0, unknown, pruned, ahead, or a diff too large): a chunked snapshot at the revision read
//   before streaming; changes made while it streams follow as diffs/commands.
// Live changes: every change-log row is one revision. A few pending single-subscriber rows go out as
//   Commands (id "<node>/<revision>", add_user / remove_user / suspend_user); more, or a config
//   change, as one StateDiff. Content is rendered from current state, so a resend is harmless.
// Acks: Ack.applied_revision and acked command ids (each id names its revision) move the node's
//   applied revision; everything above it is unacked and re-sent by the diff of the next Hello.
// Usage: each UsageBatch goes to the ingest queue; its UsageAck is written after the transaction
//   committed. Several batches may be in flight; acks are per seq and not ordered.
//
// Outbound work (sync, pushes, leases) runs one at a time per session, in order.

export interface SessionSettings {
  helloTimeoutMs: number;
  snapshotChunkUsers: number;
  diffMaxUsers: number;
  commandMax: number;
  maxInflightBatches: number;
}

export interface SessionDeps {
  cp: ControlPlane;
  hub: Hub;
  ingest: IngestQueue;
  metrics: CollectorMetrics;
  collectorId: string;
  settings: SessionSettings;
}

export interface LiveSession extends SessionHandle {
  readonly tenantId: string;
  readonly notAfter: Date;
  lastSeen: number;
  lastSampledAt: number | null;
  refreshLeases(since: Date): void;
  closeForRenewal(): void;
}

type Call = ServerDuplexStream<AgentMessage, ControlMessage>;

const MAX_FAILURES_KEPT = 20;

/** What node_health keeps of a Hello (lengths capped: the agent is not trusted to be brief). */
function helloFacts(hello: Hello): HelloFacts {
  return {
    agentVersion: hello.agentVersion.slice(0, 64),
    bootId: hello.bootId.slice(0, 128),
    capabilities: hello.engines.map((e) => ({
      engine: engineName(e.engine),
      core: e.core.slice(0, 32),
      version: e.version.slice(0, 64),
      features: e.features.slice(0, 64).map((f) => f.slice(0, 64)),
    })),
    wireguardInterfaces: hello.wireguardInterfaces.map((w) => ({
      name: w.name.slice(0, 32),
      public_key: w.publicKey.slice(0, 64),
      listen_port: w.listenPort,
      peer_count: w.peerCount,
    })),
  };
}

function grpcError(code: status, details: string) {
  return Object.assign(new Error(details), { code, details });
}

export function handleSession(call: Call, deps: SessionDeps): void {
  const { cp, hub, ingest, metrics, settings } = deps;
  const db = cp.database.db;
  const log = cp.log.child({ role: "collector" });
  let closed = false;
  let streamEnded = false;
  const endStream = () => {
    if (streamEnded) return;
    streamEnded = true;
    call.end();
  };
  let live: ReturnType<typeof createLive> | null = null;
  let outbound: Promise<void> = Promise.resolve();
  const helloTimer = setTimeout(() => {
    if (!live && !closed) reject(grpcError(status.DEADLINE_EXCEEDED, "the first message must be Hello"));
  }, settings.helloTimeoutMs);
  helloTimer.unref();

  function reject(error: Error & { code: status }) {
    if (streamEnded) return;
    closed = true;
    streamEnded = true;
    clearTimeout(helloTimer);
    call.emit("error", error);
  }

  call.on("data", (message: AgentMessage) => {
    if (closed) return;
    if (!live) {
      if (message.body?.$case !== "hello") {
        reject(grpcError(status.FAILED_PRECONDITION, "the first message must be Hello"));
        return;
      }
      call.pause();
      open(message.body.value).then(
        () => call.resume(),
        (error: unknown) => {
          if (error instanceof PeerAuthError) {
            metrics.sessionsRejected.inc({ reason: error.reason });
            reject(error);
          } else {
            log.error({ err: error }, "session start failed");
            reject(grpcError(status.UNAVAILABLE, "the collector could not start the session"));
          }
        },
      );
      return;
    }
    live.lastSeen = cp.clock.now().getTime();
    live.onMessage(message);
  });
  const end = () => {
    closed = true;
    live?.finish();
  };
  // The agent half-closed: finish and end our side too (the stream then completes with OK).
  call.on("end", () => {
    end();
    closed = true;
    endStream();
  });
  call.on("cancelled", end);
  call.on("error", end);
  call.on("close", end);

  async function open(hello: Hello): Promise<void> {
    const peer = await authenticatePeer(call, {
      isRevoked: (serial) => cp.enrollment.isRevoked(serial),
      claimedNodeId: hello.nodeId,
      now: cp.clock.now(),
    });
    const node = await sessionNode(db, peer.nodeId);
    if (!node || node.status === "revoked")
      throw new PeerAuthError("revoked", "the node was revoked or deleted");
    if (closed) return;
    clearTimeout(helloTimer);
    live = createLive(peer, node.tenantId);
    metrics.sessions.inc();
    metrics.nodeConnected.set({ node_id: peer.nodeId }, 1);
    await cp.enrollment.retireOlderCertificates(peer.nodeId, peer.serialHex).catch(() => 0);
    await recordSessionStart(db, {
      nodeId: peer.nodeId,
      collectorId: deps.collectorId,
      at: cp.clock.now(),
      ...helloFacts(hello),
    });
    await hub.register(live);
    if (closed) {
      // The stream ended while the session was being set up: undo what finish() could not see yet.
      await hub.unregister(live);
      await recordSessionEnd(db, peer.nodeId, deps.collectorId).catch(() => {});
      return;
    }
    log.info({ node_id: peer.nodeId, applied_revision: String(hello.appliedRevision) }, "node session open");
    live.sendPolicy();
    live.resync(hello.appliedRevision);
  }

  function createLive(peer: PeerIdentity, tenantId: string) {
    const nodeId = peer.nodeId;
    const nlog = log.child({ node_id: nodeId });
    /** Highest revision sent on this stream; pushes start above it. */
    let sent = -1n;
    let applied = 0n;
    let inflight = 0;
    let paused = false;
    let quiesced = false;
    let finished = false;
    let appliedDirty = false;
    const pendingEnforcement = new Map<string, number>();
    const failures: unknown[] = [];

    const send = (message: ControlMessage): boolean => {
      if (closed) return true;
      metrics.messagesSent.inc({ kind: kindOf(message) });
      return call.write(message);
    };
    const drained = () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        call.once("drain", resolve);
        call.once("close", resolve);
      });
    const serial = (work: () => Promise<void>) => {
      outbound = outbound.then(work).catch((err) => {
        if (!closed) nlog.error({ err }, "desired-state push failed");
      });
    };
    const observeRemovals = (removed: Iterable<string>) => {
      for (const sub of removed) {
        const at = pendingEnforcement.get(sub);
        if (at === undefined) continue;
        pendingEnforcement.delete(sub);
        metrics.enforcementDelay.observe((Date.now() - at) / 1000);
      }
    };

    async function snapshot(): Promise<void> {
      const rev = await cp.desired.revision(nodeId);
      if (!rev) return;
      const seq = await cp.desired.lastStoredSeq(nodeId);
      const config = nodeConfigToProto(await cp.desired.nodeConfig(nodeId));
      let after: string | null = null;
      for (let chunkIndex = 0; !closed; chunkIndex++) {
        const page = await cp.desired.snapshotPage(nodeId, after, settings.snapshotChunkUsers + 1);
        const last = page.length <= settings.snapshotChunkUsers;
        const users = page.slice(0, settings.snapshotChunkUsers);
        const ok = send({
          body: {
            $case: "snapshot",
            value: {
              revision: rev.revision,
              chunkIndex,
              last,
              users: users.map(desiredUserToProto),
              ...(chunkIndex === 0 ? { nodeConfig: config } : {}),
              usageCountedThroughSeq: seq,
            },
          },
        });
        if (last) break;
        after = users.at(-1)!.userId;
        if (!ok) await drained();
      }
      sent = rev.revision;
      // Whoever was cut off before this revision is simply absent from it.
      observeRemovals([...pendingEnforcement.keys()]);
    }

    async function diff(from: bigint, to: bigint, subs: string[], withConfig: boolean): Promise<void> {
      const seq = await cp.desired.lastStoredSeq(nodeId);
      const users = await cp.desired.users(nodeId, subs);
      const removals = subs.filter((s) => !users.has(s));
      send({
        body: {
          $case: "diff",
          value: {
            fromRevision: from,
            toRevision: to,
            upserts: [...users.values()].map(desiredUserToProto),
            removals,
            ...(withConfig ? { nodeConfig: nodeConfigToProto(await cp.desired.nodeConfig(nodeId)) } : {}),
            usageCountedThroughSeq: seq,
          },
        },
      });
      observeRemovals(removals);
      sent = to;
    }

    function command(revision: bigint, sub: string, user: DesiredUserRecord | undefined): Command {
      const id = `${nodeId}/${revision}`;
      if (!user) return { id, revision, action: { $case: "removeUser", value: sub } };
      if (user.suspended) return { id, revision, action: { $case: "suspendUser", value: sub } };
      return { id, revision, action: { $case: "addUser", value: desiredUserToProto(user) } };
    }

    /** Sends what the agent has not been sent (sent, current]. */
    async function pushPending(): Promise<void> {
      if (closed || sent < 0n) return;
      const rows = await cp.desired.changesAfter(nodeId, sent, settings.commandMax + 1);
      if (rows.length === 0) return;
      const contiguous = rows.every((r, i) => r.revision === sent + BigInt(i) + 1n);
      const asCommands =
        contiguous && rows.length <= settings.commandMax && rows.every((r) => r.subscriptionId !== null);
      if (asCommands) {
        const subs = [...new Set(rows.map((r) => r.subscriptionId!))];
        const users = await cp.desired.users(nodeId, subs);
        for (const r of rows) {
          const sub = r.subscriptionId!;
          send({ body: { $case: "command", value: command(r.revision, sub, users.get(sub)) } });
          if (!users.has(sub)) observeRemovals([sub]);
        }
        sent = rows.at(-1)!.revision;
        return;
      }
      const rev = await cp.desired.revision(nodeId);
      if (!rev) return;
      await syncFrom(sent, rev.revision, rev.floorRevision);
    }

    /** Brings an agent at `applied` to `current`: nothing, one diff, or a snapshot. */
    async function syncFrom(applied: bigint, current: bigint, floor: bigint): Promise<void> {
      if (applied === current) {
        sent = current;
        return;
      }
      if (applied > 0n && applied >= floor && applied < current) {
        const changed = await cp.desired.changedBetween(nodeId, applied, current, settings.diffMaxUsers);
        if (changed) return diff(applied, current, changed.subscriptionIds, changed.config);
      }
      await snapshot();
    }

    async function persistApplied(): Promise<void> {
      if (!appliedDirty) return;
      appliedDirty = false;
      await recordApplied(db, nodeId, applied, failures);
    }

    const session: LiveSession & {
      finish(): void;
      onMessage(m: AgentMessage): void;
      resync(applied: bigint): void;
    } = {
      nodeId,
      serialHex: peer.serialHex,
      tenantId,
      notAfter: peer.notAfter,
      lastSeen: cp.clock.now().getTime(),
      lastSampledAt: null,

      resync(agentApplied: bigint) {
        serial(async () => {
          applied = agentApplied > applied ? agentApplied : applied;
          const rev = await cp.desired.revision(nodeId);
          if (!rev) return;
          await syncFrom(agentApplied, rev.revision, rev.floorRevision);
          await pushPending();
        });
      },

      push(enforcement) {
        if (enforcement) {
          const prefix = `${nodeId}|`;
          for (const [key, at] of Object.entries(enforcement)) {
            if (key.startsWith(prefix)) pendingEnforcement.set(key.slice(prefix.length), at);
          }
        }
        serial(pushPending);
      },

      pushLeases(subscriptionIds) {
        serial(async () => {
          const leases = await cp.desired.leases(nodeId, subscriptionIds);
          if (leases.length === 0) return;
          await sendLeases(leases);
        });
      },

      refreshLeases(since) {
        serial(async () => {
          const leases = await cp.desired.leasesUsedSince(nodeId, since, 100_000);
          if (leases.length) await sendLeases(leases);
        });
      },

      sendPolicy() {
        serial(async () => {
          const doc = (await sessionNode(db, nodeId))?.policy ?? {};
          const num = (key: string, fallback: number) =>
            typeof doc[key] === "number" && Number.isInteger(doc[key]) && (doc[key] as number) > 0
              ? (doc[key] as number)
              : fallback;
          send({
            body: {
              $case: "policy",
              value: {
                usageIntervalSeconds: num("usage_interval_seconds", cp.config.NODE_USAGE_INTERVAL_SECONDS),
                healthIntervalSeconds: num("health_interval_seconds", cp.config.NODE_HEALTH_INTERVAL_SECONDS),
                maxSamplesPerBatch: num("max_samples_per_batch", cp.config.NODE_MAX_SAMPLES_PER_BATCH),
                lastStoredUsageSeq: await cp.desired.lastStoredSeq(nodeId),
                enforceLeasesOnline: doc.enforce_leases_online === true,
              },
            },
          });
        });
      },

      close(reason, message) {
        if (closed) return;
        const code =
          reason === "revoked"
            ? CloseReason.REVOKED
            : reason === "superseded"
              ? CloseReason.SUPERSEDED
              : CloseReason.DRAINING;
        send({ body: { $case: "close", value: { reason: code, message, retryAfterSeconds: 0 } } });
        closed = true;
        endStream();
        session.finish();
      },

      quiesce() {
        quiesced = true;
        if (!closed) call.pause();
      },

      closeForRenewal() {
        if (closed) return;
        send({
          body: {
            $case: "close",
            value: {
              reason: CloseReason.RENEW_CERTIFICATE,
              message: "certificate expires soon",
              retryAfterSeconds: 0,
            },
          },
        });
        closed = true;
        endStream();
        session.finish();
      },

      onMessage(message) {
        const body = message.body;
        if (!body) return;
        switch (body.$case) {
          case "hello":
            if (body.value.nodeId !== nodeId) {
              reject(grpcError(status.PERMISSION_DENIED, "certificate does not belong to the claimed node"));
              session.finish();
              return;
            }
            // Answered like a new session's Hello, including what it says about the node (an agent
            // announces its WireGuard interfaces this way once the node config created them).
            void recordHelloFacts(db, nodeId, helloFacts(body.value)).catch((err) =>
              nlog.warn({ err }, "hello facts not stored"),
            );
            session.resync(body.value.appliedRevision);
            return;
          case "ack":
            onAck(body.value);
            return;
          case "usage":
            onUsage(body.value);
            return;
          case "health":
            void recordHealthReport(db, nodeId, cp.clock.now(), {
              engines: body.value.engines.map((e) => ({
                engine: engineName(e.engine),
                status: engineStatusName(e.status),
                core_uptime_seconds: Number(e.coreUptimeSeconds),
                users_served: e.usersServed,
                detail: e.detail.slice(0, 500),
              })),
              usageQueueDepth: body.value.usageQueueDepth,
              oldestPendingUsage: body.value.oldestPendingUsage ?? null,
              leaseState: leaseStateName(body.value.leaseState),
              loadAverage1m: Number.isFinite(body.value.loadAverage1m) ? body.value.loadAverage1m : null,
              memoryUsedBytes: body.value.memoryUsedBytes,
              memoryTotalBytes: body.value.memoryTotalBytes,
            }).catch((err) => nlog.warn({ err }, "health not stored"));
            metrics.nodeQueueDepth.set({ node_id: nodeId }, body.value.usageQueueDepth);
            return;
        }
      },

      finish() {
        if (finished) return;
        finished = true;
        closed = true;
        clearTimeout(helloTimer);
        metrics.sessions.dec();
        for (const gauge of perNodeGauges(metrics)) gauge.remove({ node_id: nodeId });
        void hub.unregister(session);
        void persistApplied()
          .then(() => recordSessionEnd(db, nodeId, deps.collectorId))
          .catch(() => {});
        nlog.info("node session closed");
      },
    };

    async function sendLeases(leases: Array<{ userId: string; lease: DesiredUserRecord["lease"] }>) {
      const seq = await cp.desired.lastStoredSeq(nodeId);
      for (let i = 0; i < leases.length && !closed; i += 5000) {
        const ok = send({
          body: {
            $case: "leaseUpdate",
            value: {
              leases: leases
                .slice(i, i + 5000)
                .map((l) => ({ userId: l.userId, lease: leaseToProto(l.lease) })),
              usageCountedThroughSeq: seq,
            },
          },
        });
        if (!ok) await drained();
      }
    }

    function onAck(ack: Ack) {
      let top = ack.appliedRevision;
      for (const id of ack.commandIds) {
        const m = /\/(\d+)$/.exec(id);
        if (m && id.startsWith(`${nodeId}/`)) {
          const r = BigInt(m[1]!);
          if (r > top) top = r;
        }
      }
      if (top > applied) {
        applied = top;
        appliedDirty = true;
      }
      for (const f of ack.failures) {
        failures.push({
          command_id: f.commandId,
          user_id: f.userId,
          message: f.message.slice(0, 500),
          at: new Date().toISOString(),
        });
        appliedDirty = true;
      }
      if (ack.failures.length) nlog.warn({ failures: ack.failures.length }, "agent reported apply failures");
      failures.splice(0, Math.max(0, failures.length - MAX_FAILURES_KEPT));
      metrics.nodeRevisionLag.set({ node_id: nodeId }, Number(sent > applied ? sent - applied : 0n));
      void persistApplied().catch(() => {
        appliedDirty = true;
      });
    }

    function onUsage(batch: UsageBatch) {
      inflight++;
      if (inflight >= settings.maxInflightBatches && !paused) {
        paused = true;
        call.pause();
      }
      const sampledAt = batch.sampledAt ?? new Date();
      ingest
        .submit({
          batch: {
            nodeId,
            tenantId,
            seq: batch.seq,
            sampledAt,
            samples: batch.samples.map((s) => ({
              userId: s.userId,
              engine: s.engine,
              up: s.uplinkBytes,
              down: s.downlinkBytes,
            })),
          },
          arrivedAt: Date.now(),
        })
        .then(
          (outcome) => {
            if (!outcome.duplicate && (session.lastSampledAt ?? 0) < sampledAt.getTime()) {
              session.lastSampledAt = sampledAt.getTime();
            }
            send({ body: { $case: "usageAck", value: { seq: batch.seq, duplicate: outcome.duplicate } } });
          },
          (error) => {
            if (isPermanentIngestError(error))
              nlog.error({ err: error, seq: String(batch.seq) }, "usage batch refused");
          },
        )
        .finally(() => {
          inflight--;
          if (paused && inflight < settings.maxInflightBatches) {
            paused = false;
            if (!closed && !quiesced) call.resume();
          }
        });
    }

    return session;
  }
}
