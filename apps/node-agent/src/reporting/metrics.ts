// Prometheus metrics of the agent. Gauges read live state at scrape time (collect callbacks), so the
// hot paths only bump counters and observe durations.

import { Counter, createMetricsRegistry, Gauge, Histogram, type Registry, VERSION } from "@vpnpanel/common";
import type { QueueMetrics } from "../queue/batch-queue";
import type { ConnectionState } from "../session/connection";

export interface AgentMetricsSource {
  queue: () => QueueMetrics;
  sessionState: () => ConnectionState;
  appliedRevision: () => bigint;
  engines: () => Array<{ engine: string; up: boolean; users: number; restarts: number }>;
  leases: () => { leased: number; cut: number };
}

export interface AgentMetrics {
  registry: Registry;
  applySeconds: Histogram<"kind">;
  sessionsEstablished: Counter;
  usageBatchesSent: Counter;
  usageAcks: Counter;
  leaseCuts: Counter;
}

const SESSION_STATES: ConnectionState[] = ["idle", "connecting", "open", "waiting", "revoked", "stopped"];

export function createAgentMetrics(source: AgentMetricsSource, registry?: Registry): AgentMetrics {
  const reg =
    registry ?? createMetricsRegistry({ service: "vpnpanel-agent", version: VERSION, roles: ["agent"] });
  const registers = [reg];
  new Gauge({
    name: "agent_usage_queue_pending_batches",
    help: "Usage batches on disk, not acked yet",
    registers,
    collect() {
      this.set(source.queue().pendingBatches);
    },
  });
  new Gauge({
    name: "agent_usage_queue_pending_bytes",
    help: "Bytes of usage batches on disk, not acked yet",
    registers,
    collect() {
      this.set(source.queue().pendingBytes);
    },
  });
  new Gauge({
    name: "agent_usage_queue_oldest_pending_seconds",
    help: "Age of the oldest unacked usage batch",
    registers,
    collect() {
      this.set(source.queue().oldestPendingAgeMs / 1000);
    },
  });
  new Gauge({
    name: "agent_usage_queue_file_bytes",
    help: "Size of the usage queue file",
    registers,
    collect() {
      this.set(source.queue().fileBytes);
    },
  });
  new Gauge({
    name: "agent_usage_queue_merges",
    help: "Unsent batches merged because the queue bound was reached (since start)",
    registers,
    collect() {
      this.set(source.queue().merges);
    },
  });
  new Gauge({
    name: "agent_usage_queue_over_limit",
    help: "1 when the queue is over its bound and nothing could be merged",
    registers,
    collect() {
      this.set(source.queue().overLimit ? 1 : 0);
    },
  });
  new Gauge({
    name: "agent_usage_next_seq",
    help: "Sequence number the next usage batch gets",
    registers,
    collect() {
      this.set(source.queue().nextSeq);
    },
  });
  new Gauge({
    name: "agent_session_state",
    help: "1 for the current state of the collector session",
    labelNames: ["state"],
    registers,
    collect() {
      const current = source.sessionState();
      for (const state of SESSION_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: "agent_applied_revision",
    help: "Desired-state revision the node has applied",
    registers,
    collect() {
      this.set(Number(source.appliedRevision()));
    },
  });
  new Gauge({
    name: "agent_engine_up",
    help: "1 when the engine runs",
    labelNames: ["engine"],
    registers,
    collect() {
      for (const e of source.engines()) this.set({ engine: e.engine }, e.up ? 1 : 0);
    },
  });
  new Gauge({
    name: "agent_engine_users",
    help: "Users applied to the engine",
    labelNames: ["engine"],
    registers,
    collect() {
      for (const e of source.engines()) this.set({ engine: e.engine }, e.users);
    },
  });
  new Gauge({
    name: "agent_engine_restarts",
    help: "Core restarts after a crash (since start)",
    labelNames: ["engine"],
    registers,
    collect() {
      for (const e of source.engines()) this.set({ engine: e.engine }, e.restarts);
    },
  });
  new Gauge({
    name: "agent_leases",
    help: "Users with a local lease, and users currently cut by it",
    labelNames: ["kind"],
    registers,
    collect() {
      const l = source.leases();
      this.set({ kind: "leased" }, l.leased);
      this.set({ kind: "cut" }, l.cut);
    },
  });
  return {
    registry: reg,
    applySeconds: new Histogram({
      name: "agent_apply_duration_seconds",
      help: "Time to apply desired state to the engines",
      labelNames: ["kind"],
      buckets: [0.005, 0.02, 0.1, 0.5, 1, 5, 15, 30, 60, 120],
      registers,
    }),
    sessionsEstablished: new Counter({
      name: "agent_sessions_established_total",
      help: "Collector sessions established",
      registers,
    }),
    usageBatchesSent: new Counter({
      name: "agent_usage_batches_sent_total",
      help: "Usage batches written to a session (resends included)",
      registers,
    }),
    usageAcks: new Counter({ name: "agent_usage_acks_total", help: "Usage acks received", registers }),
    leaseCuts: new Counter({
      name: "agent_lease_cuts_total",
      help: "Users cut locally because their lease ran out",
      registers,
    }),
  };
}
