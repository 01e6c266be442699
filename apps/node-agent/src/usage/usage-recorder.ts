// Glue between engine readings, the delta tracker and the durable queue.
//
// Invariant: the persisted baselines are always exactly the counters that the persisted batches
// account for. Each batch record carries its deltas AND the baseline changes that produced them, in
// one CRC-framed, fsync'd write, so after any crash either both exist or neither does:
//   - killed after reading counters, before the append: nothing was persisted; the next reading is
//     diffed against the old baseline and carries those bytes. No loss, no double count.
//   - killed mid-append (torn frame): the CRC rejects the frame at open and the tail is truncated;
//     same as above.
//   - killed after the append, before sending: the batch is pending and goes out after restart.
//   - killed after sending, before the ack: the batch is re-sent under the same seq; the collector
//     commits per (node, seq) and answers a replay with an ack.
// The one window the agent cannot close: a removal destroys the engine's counter, so a crash between
// the driver returning the final reading and recordFinal persisting it loses that user's bytes since
// the previous sample. Sampling right before a planned removal shrinks it to milliseconds.
//
// Calls are serialized: computing deltas reads the baselines that the append then changes.
// A reading with more users than maxSamplesPerBatch is cut into several batches; each carries the
// baseline changes of exactly its own users, so every record stays self-consistent on its own.

import { createSerialLock } from "../engines/async-utils";
import type { EngineKind, UsageReading } from "../engines/types";
import type { BatchQueue, PendingBatch } from "../queue/batch-queue";
import {
  type BaselineChanges,
  baselineKey,
  computeDeltas,
  staleBaselines,
  type UsageDelta,
} from "./delta-tracker";

export interface UsageRecorder {
  /** A periodic sample of an engine's absolute counters. */
  record(engine: EngineKind, readings: readonly UsageReading[]): Promise<PendingBatch[]>;
  /** Final readings from a removal (ApplyResult.final): added in, then the baselines are dropped. */
  recordFinal(engine: EngineKind, readings: readonly UsageReading[]): Promise<PendingBatch[]>;
  /** Forgets baselines of counter lives that ended (generations no longer live, e.g. after a restart). */
  prune(engine: EngineKind, liveGenerations: readonly string[]): Promise<void>;
}

/** Splits deltas into batches of at most `max`, each with the baseline changes of its own keys. */
export function splitBatches(
  deltas: readonly UsageDelta[],
  changes: BaselineChanges,
  max: number,
): Array<{ deltas: UsageDelta[]; changes: BaselineChanges }> {
  if (deltas.length <= max) return [{ deltas: [...deltas], changes }];
  const parts: Array<{ deltas: UsageDelta[]; changes: BaselineChanges }> = [];
  const claimed = new Set<string>();
  for (let i = 0; i < deltas.length; i += max) {
    const chunk = deltas.slice(i, i + max);
    const keys = new Set(chunk.map((d) => baselineKey(d.engine, d.userId)));
    for (const k of keys) claimed.add(k);
    parts.push({
      deltas: chunk,
      changes: {
        set: changes.set.filter(([k]) => keys.has(k)),
        drop: changes.drop.filter((k) => keys.has(k)),
      },
    });
  }
  // Baseline-only changes (users without usage) ride with the last part.
  const last = parts.at(-1) as (typeof parts)[number];
  last.changes.set.push(...changes.set.filter(([k]) => !claimed.has(k)));
  last.changes.drop.push(...changes.drop.filter((k) => !claimed.has(k)));
  return parts;
}

export interface UsageRecorderOptions {
  /** A number, or a getter (the control plane's Policy can change it at run time). */
  maxSamplesPerBatch?: number | (() => number);
  /**
   * Called after each durable append with the batch's seq and the deltas this call added — for a
   * merged batch, only the new ones (the lease book already holds the merged batches' own usage).
   */
  onAppend?: (seq: number, deltas: readonly UsageDelta[]) => void;
}

export function createUsageRecorder(queue: BatchQueue, options: UsageRecorderOptions = {}): UsageRecorder {
  const exclusive = createSerialLock();
  const maxOf = () =>
    (typeof options.maxSamplesPerBatch === "function"
      ? options.maxSamplesPerBatch()
      : options.maxSamplesPerBatch) || 10_000;
  const recordWith = (engine: EngineKind, readings: readonly UsageReading[], final: boolean) =>
    exclusive(async () => {
      const { deltas, changes } = computeDeltas(queue.baselines(), engine, readings, { final });
      const out: PendingBatch[] = [];
      for (const part of splitBatches(deltas, changes, maxOf())) {
        const batch = await queue.append(part);
        if (batch) {
          out.push(batch);
          options.onAppend?.(batch.seq, part.deltas);
        }
      }
      return out;
    });
  return {
    record: (engine, readings) => recordWith(engine, readings, false),
    recordFinal: (engine, readings) => recordWith(engine, readings, true),
    prune: (engine, live) =>
      exclusive(async () => {
        const drop = staleBaselines(queue.baselines(), engine, new Set(live));
        if (drop.length > 0) await queue.append({ deltas: [], changes: { set: [], drop } });
      }),
  };
}
