// The periodic HealthReport: per-engine status, the usage queue, lease state and host load.

import { freemem, loadavg, totalmem } from "node:os";
import { EngineStatus, type HealthReport, LeaseState } from "@vpnpanel/proto";
import type { SlotRuntime } from "../desired/applier";
import { engineOfKind } from "../desired/user-mapping";
import type { QueueMetrics } from "../queue/batch-queue";

export interface HealthInputs {
  now: number;
  slots: readonly SlotRuntime[];
  sampleError: (kind: SlotRuntime["slot"]["kind"]) => string | null;
  queue: QueueMetrics;
  /** Offline at any point since the previous report. */
  wasOffline: boolean;
  cutsSinceReport: number;
}

export function buildHealthReport(input: HealthInputs): HealthReport {
  const engines = input.slots.map((rt) => {
    const status = rt.slot.driver.status();
    const problem = rt.startError ?? input.sampleError(rt.slot.kind);
    // An engine the node config does not use is not "down": it is simply not part of this node.
    let state = rt.base === null && !rt.started ? EngineStatus.UNSPECIFIED : EngineStatus.DOWN;
    if (rt.started && status.running) state = problem ? EngineStatus.DEGRADED : EngineStatus.RUNNING;
    const uptime = Number(status.details.uptimeSeconds ?? 0);
    return {
      engine: engineOfKind(rt.slot.kind),
      status: state,
      coreUptimeSeconds: BigInt(Number.isFinite(uptime) ? Math.max(0, Math.floor(uptime)) : 0),
      usersServed: status.users,
      detail: (problem ?? status.lastError ?? (rt.base === null ? "not configured" : "")).slice(0, 500),
    };
  });
  return {
    reportedAt: new Date(input.now),
    engines,
    usageQueueDepth: input.queue.pendingBatches,
    oldestPendingUsage:
      input.queue.pendingBatches > 0 ? new Date(input.now - input.queue.oldestPendingAgeMs) : undefined,
    leaseState: input.wasOffline ? LeaseState.OFFLINE : LeaseState.ONLINE,
    usersCutLocally: input.cutsSinceReport,
    loadAverage1m: loadavg()[0] ?? 0,
    memoryUsedBytes: BigInt(totalmem() - freemem()),
    memoryTotalBytes: BigInt(totalmem()),
  };
}
