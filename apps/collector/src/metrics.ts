import { Counter, Gauge, Histogram, type Registry } from "@vpnpanel/common";

// The collector's metrics, registered in the process registry (served on /metrics by the api role).
// Per-node gauges carry a node_id label and exist only while this collector holds the node's session.

export function createCollectorMetrics(registry: Registry) {
  const registers = [registry];
  return {
    sessions: new Gauge({
      name: "vpnpanel_collector_sessions",
      help: "Node sessions held by this collector",
      registers,
    }),
    sessionsRejected: new Counter({
      name: "vpnpanel_collector_sessions_rejected_total",
      help: "Sessions and calls refused, by reason",
      labelNames: ["reason"],
      registers,
    }),
    batches: new Counter({
      name: "vpnpanel_ingest_batches_total",
      help: "Usage batches by outcome (stored, duplicate, failed)",
      labelNames: ["outcome"],
      registers,
    }),
    samples: new Counter({
      name: "vpnpanel_ingest_samples_total",
      help: "Usage samples by outcome (counted; skipped = unknown subscription, foreign tenant or bad value)",
      labelNames: ["outcome"],
      registers,
    }),
    ingestSeconds: new Histogram({
      name: "vpnpanel_ingest_transaction_seconds",
      help: "Duration of one ingest transaction (a group of batches)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    ingestGroupBatches: new Histogram({
      name: "vpnpanel_ingest_group_batches",
      help: "Batches committed together in one transaction",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    ingestRetries: new Counter({
      name: "vpnpanel_ingest_retries_total",
      help: "Ingest transactions retried (database unavailable, deadlock)",
      registers,
    }),
    ingestQueue: new Gauge({
      name: "vpnpanel_ingest_queue_batches",
      help: "Batches waiting to be ingested",
      registers,
    }),
    enforcementDelay: new Histogram({
      name: "vpnpanel_enforcement_delay_seconds",
      help: "From the arrival of the batch that spent a quota to the removal leaving this collector",
      buckets: [
        0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10,
      ],
      registers,
    }),
    messagesSent: new Counter({
      name: "vpnpanel_collector_messages_sent_total",
      help: "Control messages sent to agents, by kind",
      labelNames: ["kind"],
      registers,
    }),
    outboxEvents: new Counter({
      name: "vpnpanel_nodes_outbox_events_total",
      help: "Lifecycle outbox events consumed by the nodes consumer",
      registers,
    }),
    nodeConnected: new Gauge({
      name: "vpnpanel_node_connected",
      help: "1 while this collector holds the node's session",
      labelNames: ["node_id"],
      registers,
    }),
    nodeLastSeen: new Gauge({
      name: "vpnpanel_node_last_seen_timestamp_seconds",
      help: "When the node last sent anything",
      labelNames: ["node_id"],
      registers,
    }),
    nodeDegraded: new Gauge({
      name: "vpnpanel_node_degraded",
      help: "1 when the node is silent longer than NODE_DEGRADED_AFTER_SECONDS or reports a failing engine",
      labelNames: ["node_id"],
      registers,
    }),
    nodeUsageLag: new Gauge({
      name: "vpnpanel_node_usage_lag_seconds",
      help: "Age of the newest usage batch stored for the node",
      labelNames: ["node_id"],
      registers,
    }),
    nodeQueueDepth: new Gauge({
      name: "vpnpanel_node_usage_queue_depth",
      help: "Usage batches the agent reports as written but not yet acked",
      labelNames: ["node_id"],
      registers,
    }),
    nodeRevisionLag: new Gauge({
      name: "vpnpanel_node_revision_lag",
      help: "Desired-state revisions sent but not yet acked by the agent",
      labelNames: ["node_id"],
      registers,
    }),
  };
}

export type CollectorMetrics = ReturnType<typeof createCollectorMetrics>;

export const perNodeGauges = (m: CollectorMetrics) => [
  m.nodeConnected,
  m.nodeLastSeen,
  m.nodeDegraded,
  m.nodeUsageLag,
  m.nodeQueueDepth,
  m.nodeRevisionLag,
];
