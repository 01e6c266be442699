// Record types of the queue file and their JSON encoding (compact arrays: a batch for 100k users is
// a few MB, and it is written once and read only on recovery).

import type { EngineKind } from "../engines/types";
import type { Baseline, BaselineChanges, UsageDelta } from "../usage/delta-tracker";

type DeltaRow = [engine: EngineKind, userId: string, up: number, down: number];
type BaseRow = [key: string, generation: string, up: number, down: number];

export type QueueRecord =
  /** Head of a compacted file: the full baseline and the next sequence number. */
  | { t: "snap"; next: number; base: BaseRow[] }
  /** A usage batch and the baseline changes that produced it, in one frame. */
  | { t: "batch"; seq: number; at: number; d: DeltaRow[]; set: BaseRow[]; drop: string[] }
  /**
   * A batch that replaces never-sent batches `replaces` (queue bound reached). It takes the lowest
   * replaced seq, and `next` resets the counter, so the collector still sees consecutive numbers.
   */
  | {
      t: "merge";
      seq: number;
      next: number;
      at: number;
      replaces: number[];
      d: DeltaRow[];
      set: BaseRow[];
      drop: string[];
    }
  /** The next seq was raised (Policy.last_stored_usage_seq after a lost queue). */
  | { t: "seq"; next: number }
  /** Baseline changes without usage (e.g. a counter went to zero after a restart). */
  | { t: "base"; set: BaseRow[]; drop: string[] }
  | { t: "ack"; seqs: number[] };

export const toDeltaRows = (deltas: readonly UsageDelta[]): DeltaRow[] =>
  deltas.map((d) => [d.engine, d.userId, d.up, d.down]);

export const fromDeltaRows = (rows: readonly DeltaRow[]): UsageDelta[] =>
  rows.map(([engine, userId, up, down]) => ({ engine, userId, up, down }));

export const toBaseRows = (set: BaselineChanges["set"]): BaseRow[] =>
  set.map(([key, b]) => [key, b.generation, b.up, b.down]);

export const fromBaseRows = (rows: readonly BaseRow[]): BaselineChanges["set"] =>
  rows.map(([key, generation, up, down]) => [key, { generation, up, down } satisfies Baseline]);

const encoder = new TextEncoder();

export function encodeRecord(record: QueueRecord): Uint8Array {
  return encoder.encode(JSON.stringify(record));
}

export function decodeRecord(payload: Uint8Array): QueueRecord {
  return JSON.parse(Buffer.from(payload).toString("utf8")) as QueueRecord;
}
