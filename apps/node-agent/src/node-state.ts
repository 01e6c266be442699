// Everything the agent keeps on disk, opened together at start: the usage queue, the lease book and
// the stored desired state, plus the recorder and pump that write and drain the queue.
//
// Leases are rebuilt in this order: the stored ones, then those carried by the stored desired state
// (an older lease never replaces a newer one), then the usage of every unacked batch — exactly the
// usage the control plane had not counted when it computed the last leases.

import type { Logger } from "pino";
import { type DesiredStore, openDesiredStore } from "./desired/desired-store";
import { leaseFromProto } from "./desired/user-mapping";
import { type LeaseGuard, openLeaseGuard } from "./enforcement/lease-guard";
import { type BatchQueue, openBatchQueue } from "./queue/batch-queue";
import { createUsagePump, type UsagePump } from "./reporting/usage-pump";
import { createUsageRecorder } from "./usage/usage-recorder";

export interface NodeState {
  queue: BatchQueue;
  leases: LeaseGuard;
  store: DesiredStore;
  pump: UsagePump;
  close(): Promise<void>;
}

export async function openNodeState(options: {
  stateDir: string;
  now: () => number;
  /** Policy.max_samples_per_batch as it stands (it can change at run time). */
  maxSamples: () => number;
  queue?: { maxBatches?: number; maxBytes?: number };
  logger: Logger;
  onSent?: () => void;
}): Promise<NodeState> {
  const queue = await openBatchQueue({
    dir: options.stateDir,
    now: options.now,
    maxSamples: options.maxSamples,
    ...(options.queue?.maxBatches ? { maxBatches: options.queue.maxBatches } : {}),
    ...(options.queue?.maxBytes ? { maxBytes: options.queue.maxBytes } : {}),
  });
  const leases = await openLeaseGuard(options.stateDir);
  const store = await openDesiredStore(options.stateDir);
  for (const user of store.state.users.values())
    leases.grant(user.userId, leaseFromProto(user.lease, store.state.usageCountedThroughSeq));
  for (const batch of queue.pending()) leases.onBatch(batch.seq, batch.deltas);
  const recorder = createUsageRecorder(queue, {
    maxSamplesPerBatch: options.maxSamples,
    onAppend: (seq, deltas) => leases.onBatch(seq, deltas),
  });
  const pump = createUsagePump({
    queue,
    recorder,
    logger: options.logger,
    ...(options.onSent ? { onSent: options.onSent } : {}),
  });
  return {
    queue,
    leases,
    store,
    pump,
    async close() {
      await leases.persist(true);
      await queue.close();
      await store.close();
    },
  };
}
