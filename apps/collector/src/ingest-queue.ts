import type { Logger } from "@vpnpanel/common";
import {
  type BatchOutcome,
  type Ingestor,
  type IngestResult,
  isPermanentIngestError,
  type UsageBatchInput,
} from "@vpnpanel/control";
import type { CollectorMetrics } from "./metrics";

// Group commit for usage batches. Batches from all sessions queue here; up to `concurrency` workers
// each take the oldest batches, up to `maxGroupSamples` samples, and store them in ONE transaction
// (per-transaction overhead dominates small batches; one writer per core is as fast as more, see
// shared/research/limits.md §1). A batch's promise resolves only after its transaction committed,
// and the session acks it only then.
//
// Failures: a connection loss or deadlock retries the same group with backoff, forever while the
// collector runs (a database restart loses nothing: the agents' batches wait here or in their own
// queues). A permanent error (bad data) splits the group so the other batches still commit; the bad
// batch is rejected and stays unacked in the agent's queue, visible in the metrics and logs.

export interface QueuedBatch {
  batch: UsageBatchInput;
  /** ms timestamp when the batch arrived (enforcement latency starts here). */
  arrivedAt: number;
}

export interface IngestHooks {
  /** Test hook: runs after the commit, before any ack is sent (a crash here must not double count). */
  afterCommit?: (batches: readonly UsageBatchInput[]) => void;
}

interface Pending extends QueuedBatch {
  resolve(outcome: BatchOutcome): void;
  reject(error: unknown): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createIngestQueue(deps: {
  ingestor: Ingestor;
  concurrency: number;
  maxGroupSamples: number;
  log: Logger;
  metrics: CollectorMetrics;
  /** After commit, before acks: enforcement fan-out and lease updates. */
  onCommitted(result: IngestResult, items: readonly QueuedBatch[]): void;
  hooks?: IngestHooks;
}) {
  const queue: Pending[] = [];
  let active = 0;
  let stopped = false;
  const idleWaiters: Array<() => void> = [];

  function takeGroup(): Pending[] {
    const group: Pending[] = [];
    const keys = new Set<string>();
    let samples = 0;
    for (let i = 0; i < queue.length; ) {
      const item = queue[i]!;
      const key = `${item.batch.nodeId}\u0000${item.batch.seq}`;
      const size = item.batch.samples.length;
      if (group.length > 0 && samples + size > deps.maxGroupSamples) break;
      // The same (node, seq) twice in one group would be stored once but acked twice as new: the
      // second copy waits for the next group, where it is a plain duplicate.
      if (keys.has(key)) {
        i++;
        continue;
      }
      queue.splice(i, 1);
      group.push(item);
      keys.add(key);
      samples += size;
    }
    return group;
  }

  async function commit(group: Pending[]): Promise<void> {
    const batches = group.map((g) => g.batch);
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      try {
        const result = await deps.ingestor.ingest(batches);
        deps.metrics.ingestSeconds.observe((performance.now() - started) / 1000);
        deps.metrics.ingestGroupBatches.observe(group.length);
        deps.hooks?.afterCommit?.(batches);
        try {
          deps.onCommitted(result, group);
        } catch (error) {
          deps.log.error({ err: error }, "after-commit fan-out failed");
        }
        result.outcomes.forEach((outcome, i) => {
          deps.metrics.batches.inc({ outcome: outcome.duplicate ? "duplicate" : "stored" });
          deps.metrics.samples.inc({ outcome: "counted" }, outcome.counted);
          if (outcome.skipped) deps.metrics.samples.inc({ outcome: "skipped" }, outcome.skipped);
          group[i]!.resolve(outcome);
        });
        return;
      } catch (error) {
        if (isPermanentIngestError(error)) {
          if (group.length > 1) {
            for (const one of group) await commit([one]);
            return;
          }
          deps.metrics.batches.inc({ outcome: "failed" });
          deps.log.error(
            { err: error, node_id: group[0]!.batch.nodeId, seq: String(group[0]!.batch.seq) },
            "usage batch rejected",
          );
          group[0]!.reject(error);
          return;
        }
        if (stopped) {
          for (const g of group) g.reject(error);
          return;
        }
        deps.metrics.ingestRetries.inc();
        if (attempt % 10 === 0) deps.log.warn({ err: error, attempt }, "ingest failed; retrying");
        await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  function pump() {
    while (active < deps.concurrency && queue.length > 0) {
      const group = takeGroup();
      if (group.length === 0) break;
      active++;
      deps.metrics.ingestQueue.set(queue.length);
      void commit(group).finally(() => {
        active--;
        deps.metrics.ingestQueue.set(queue.length);
        if (active === 0 && queue.length === 0) for (const w of idleWaiters.splice(0)) w();
        pump();
      });
    }
  }

  return {
    submit(item: QueuedBatch): Promise<BatchOutcome> {
      if (stopped) return Promise.reject(new Error("the collector is shutting down"));
      return new Promise((resolve, reject) => {
        queue.push({ ...item, resolve, reject });
        deps.metrics.ingestQueue.set(queue.length);
        pump();
      });
    },
    get depth() {
      return queue.length + active;
    },
    /** Waits until everything queued has committed (or failed); new batches are refused. */
    async drain(timeoutMs: number): Promise<void> {
      const idle = new Promise<void>((resolve) => {
        if (active === 0 && queue.length === 0) resolve();
        else idleWaiters.push(resolve);
      });
      await Promise.race([idle, sleep(timeoutMs)]);
      stopped = true;
      for (const p of queue.splice(0)) p.reject(new Error("the collector is shutting down"));
    },
  };
}

export type IngestQueue = ReturnType<typeof createIngestQueue>;
