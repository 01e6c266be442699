// Usage from the engines to the collector: read absolute counters, let the recorder turn them into
// batches that are fsync'd to the queue, then send every pending batch in seq order. A batch is marked
// sent before it is written to the stream (so it is never merged afterwards) and dropped only on its
// UsageAck. A new session resends everything still pending, oldest first: the collector answers a
// replay with an ack, so nothing is lost and nothing counted twice.

import { Engine, type UsageBatch } from "@vpnpanel/proto";
import type { Logger } from "pino";
import type { EngineSlot } from "../engine-slots";
import { errorMessage } from "../engines/async-utils";
import type { EngineKind, UsageReading } from "../engines/types";
import type { BatchQueue, PendingBatch } from "../queue/batch-queue";
import { NotConnectedError, type SessionHandle } from "../session/connection";
import type { UsageRecorder } from "../usage/usage-recorder";

export interface UsagePump {
  /** Reads one engine's counters and records them (caller holds the engine lock). */
  sample(slot: EngineSlot): Promise<void>;
  /** Readings taken outside a sample (a left-over core's counters at start). */
  record(kind: EngineKind, readings: readonly UsageReading[]): Promise<void>;
  /** Final readings returned by a removal. */
  recordFinal(kind: EngineKind, readings: readonly UsageReading[]): Promise<void>;
  attach(session: SessionHandle): void;
  detach(): void;
  /** Sends every pending batch this session has not sent yet, in seq order. */
  flush(): Promise<void>;
  ack(seq: number): Promise<void>;
  /** Highest seq S such that every batch up to S is acked (a lower bound of what the collector counted). */
  ackedThrough(): number;
  lastSampleError(kind: EngineKind): string | null;
  stats(): { sent: number; resent: number; acked: number };
}

export function toUsageBatch(batch: PendingBatch): UsageBatch {
  return {
    seq: BigInt(batch.seq),
    sampledAt: new Date(batch.createdAt),
    samples: batch.deltas.map((d) => ({
      userId: d.userId,
      engine: d.engine === "xray" ? Engine.XRAY : Engine.WIREGUARD,
      uplinkBytes: BigInt(d.up),
      downlinkBytes: BigInt(d.down),
    })),
  };
}

export function createUsagePump(deps: {
  queue: BatchQueue;
  recorder: UsageRecorder;
  logger: Logger;
  onSent?: () => void;
}): UsagePump {
  const { queue, recorder, logger } = deps;
  let session: SessionHandle | null = null;
  /** Highest seq written to the current session. */
  let cursor = 0;
  let flushing: Promise<void> | null = null;
  let again = false;
  const everSent = new Set<number>();
  const sampleErrors = new Map<EngineKind, string | null>();
  const stats = { sent: 0, resent: 0, acked: 0 };

  async function sendUnsent(): Promise<void> {
    const target = session;
    if (!target) return;
    for (const batch of queue.pending()) {
      if (batch.seq <= cursor) continue;
      if (session !== target || !target.isCurrent()) return;
      queue.markSent(batch.seq);
      try {
        await target.send({ body: { $case: "usage", value: toUsageBatch(batch) } });
      } catch (error) {
        if (error instanceof NotConnectedError) return;
        throw error;
      }
      if (session === target) cursor = batch.seq;
      if (everSent.has(batch.seq)) stats.resent++;
      else everSent.add(batch.seq);
      stats.sent++;
      deps.onSent?.();
    }
  }

  const pump: UsagePump = {
    async sample(slot) {
      let readings: UsageReading[];
      try {
        readings = await slot.driver.readUsage();
        sampleErrors.set(slot.kind, null);
      } catch (error) {
        sampleErrors.set(slot.kind, errorMessage(error));
        logger.warn({ engine: slot.kind, err: errorMessage(error) }, "reading usage failed");
        return;
      }
      await recorder.record(slot.kind, readings);
      const live = new Set(readings.map((r) => r.generation));
      const current = slot.driver.status().generation;
      if (current) live.add(current);
      if (live.size > 0) await recorder.prune(slot.kind, [...live]);
      void pump.flush();
    },
    async record(kind, readings) {
      if (readings.length === 0) return;
      await recorder.record(kind, readings);
      void pump.flush();
    },
    async recordFinal(kind, readings) {
      if (readings.length === 0) return;
      await recorder.recordFinal(kind, readings);
      void pump.flush();
    },
    attach(next) {
      session = next;
      cursor = 0;
      void pump.flush();
    },
    detach() {
      session = null;
    },
    flush() {
      if (flushing) {
        again = true;
        return flushing;
      }
      flushing = (async () => {
        do {
          again = false;
          await sendUnsent().catch((error) =>
            logger.error({ err: errorMessage(error) }, "sending usage failed"),
          );
        } while (again);
      })().finally(() => {
        flushing = null;
      });
      return flushing;
    },
    async ack(seq) {
      await queue.ack(seq);
      everSent.delete(seq);
      stats.acked++;
    },
    ackedThrough() {
      const first = queue.pending()[0];
      return first ? first.seq - 1 : queue.metrics().nextSeq - 1;
    },
    lastSampleError: (kind) => sampleErrors.get(kind) ?? null,
    stats: () => ({ ...stats }),
  };
  return pump;
}
