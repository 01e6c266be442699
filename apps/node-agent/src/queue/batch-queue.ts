// On-disk, append-only, fsync'd queue of usage batches, which also persists the delta tracker's
// baselines. Every batch is durable before anyone may send it; acked batches are dropped and the file
// is compacted (snapshot of baselines + still-pending batches, written to a temp file and renamed).
//
// Sequence numbers: each batch gets the next number (+1), and a number the collector may have seen is
// never reused — the next number is carried in every batch record and in the compaction snapshot.
// A queue that was lost (reinstall, new disk) is raised above the control plane's
// Policy.last_stored_usage_seq with advanceSeq(), or its batches would be dropped as replays.
//
// Bound: past maxBatches / maxBytes of pending data the queue never drops counts. It merges every
// batch that has not been handed to the transport yet, plus the new one, into one batch under the
// lowest of their numbers (none of them ever left the node, so the collector still sees consecutive
// numbers). Batches that may have been sent are never merged: the collector might have committed one
// whose ack got lost, and folding it into another batch would count it twice. After a restart every
// loaded batch counts as possibly sent. A merge that would exceed maxSamples is not made.

import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createSerialLock } from "../engines/async-utils";
import { createBaselineTable } from "../usage/baseline-table";
import {
  applyBaselineChanges,
  type BaselineChanges,
  type Baselines,
  mergeDeltas,
  type UsageDelta,
} from "../usage/delta-tracker";
import { frame, scanFrames } from "./framing";
import {
  decodeRecord,
  encodeRecord,
  fromBaseRows,
  fromDeltaRows,
  type QueueRecord,
  toBaseRows,
  toDeltaRows,
} from "./records";

export interface BatchQueueOptions {
  dir: string;
  maxBatches?: number;
  maxBytes?: number;
  now?: () => number;
  /** First sequence number of a brand-new queue; default 1. */
  firstSeq?: number;
  /** Most samples one batch may carry (Policy.max_samples_per_batch, which can change); merges stay within it. */
  maxSamples?: number | (() => number);
  /** Compact when dead bytes exceed max(this, live bytes). */
  compactMinBytes?: number;
}

export interface PendingBatch {
  seq: number;
  createdAt: number;
  deltas: UsageDelta[];
  bytes: number;
}

export interface QueueMetrics {
  pendingBatches: number;
  pendingBytes: number;
  oldestPendingAgeMs: number;
  fileBytes: number;
  nextSeq: number;
  merges: number;
  compactions: number;
  /** Bounds exceeded with nothing mergeable (everything pending may have been sent). */
  overLimit: boolean;
  /** Bytes cut off a torn tail at open. */
  truncatedBytes: number;
}

export interface BatchQueue {
  /** Durably appends a batch and its baseline changes in one frame; null if there was no usage. */
  append(input: { deltas: readonly UsageDelta[]; changes: BaselineChanges }): Promise<PendingBatch | null>;
  pending(): PendingBatch[];
  /** The transport calls this before writing a batch to the wire; sent batches are never merged. */
  markSent(seq: number): void;
  ack(seq: number): Promise<void>;
  /** Makes the next seq at least `lastStored + 1` (durably). */
  advanceSeq(lastStored: number): Promise<void>;
  baselines(): Baselines;
  metrics(): QueueMetrics;
  compact(): Promise<void>;
  close(): Promise<void>;
}

const FILE = "usage-queue.log";

export async function openBatchQueue(options: BatchQueueOptions): Promise<BatchQueue> {
  const now = options.now ?? Date.now;
  const maxBatches = options.maxBatches ?? 10_000;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const path = join(options.dir, FILE);
  const exclusive = createSerialLock();
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  await rm(`${path}.tmp`, { force: true }); // a compaction that died before its rename

  const baselines = createBaselineTable();
  const pending = new Map<number, PendingBatch>();
  const sent = new Set<number>();
  let nextSeq = 0;
  let merges = 0;
  let compactions = 0;
  let overLimit = false;
  let snapshotBytes = 0;

  const data = await readFile(path).catch(() => Buffer.alloc(0));
  const { records, validBytes } = scanFrames(data);
  const truncatedBytes = data.length - validBytes;
  if (truncatedBytes > 0) {
    const fh = await open(path, "r+");
    await fh.truncate(validBytes);
    await fh.datasync();
    await fh.close();
  }
  for (const payload of records) replay(decodeRecord(payload), payload.length + 8);
  if (records.length === 0) nextSeq = options.firstSeq ?? 1;
  for (const seq of pending.keys()) sent.add(seq);
  let fileBytes = validBytes;
  let fh = await open(path, "a", 0o600);

  function replay(record: QueueRecord, bytes: number): void {
    switch (record.t) {
      case "snap":
        baselines.clear();
        applyBaselineChanges(baselines, { set: fromBaseRows(record.base), drop: [] });
        nextSeq = Math.max(nextSeq, record.next);
        snapshotBytes = bytes;
        return;
      case "merge":
      case "batch":
        // A merge is a batch that also retires the never-sent batches it absorbed.
        if (record.t === "merge") for (const seq of record.replaces) pending.delete(seq);
        pending.set(record.seq, {
          seq: record.seq,
          createdAt: record.at,
          deltas: fromDeltaRows(record.d),
          bytes,
        });
        applyBaselineChanges(baselines, { set: fromBaseRows(record.set), drop: record.drop });
        nextSeq = Math.max(nextSeq, record.seq + 1);
        return;
      case "base":
        applyBaselineChanges(baselines, { set: fromBaseRows(record.set), drop: record.drop });
        return;
      case "ack":
        for (const seq of record.seqs) pending.delete(seq);
        return;
      case "seq":
        // advanceSeq(): without this a restart would hand out numbers the collector already stored.
        nextSeq = Math.max(nextSeq, record.next);
        return;
    }
  }

  async function write(record: QueueRecord, sync: boolean): Promise<number> {
    const bytes = frame(encodeRecord(record));
    try {
      await fh.write(bytes);
      if (sync) await fh.datasync();
    } catch (error) {
      // A half-written frame (e.g. ENOSPC) must not stay in the middle of the file: recovery stops
      // at the first bad frame and would lose every record appended after it.
      await fh.truncate(fileBytes).catch(() => undefined);
      throw error;
    }
    fileBytes += bytes.length;
    return bytes.length;
  }

  const pendingBytes = () => [...pending.values()].reduce((sum, b) => sum + b.bytes, 0);

  async function compactNow(): Promise<void> {
    const tmp = `${path}.tmp`;
    const out = await open(tmp, "w", 0o600);
    let size = 0;
    const snap = frame(encodeRecord({ t: "snap", next: nextSeq, base: toBaseRows([...baselines]) }));
    await out.write(snap);
    size += snap.length;
    for (const b of pending.values()) {
      const rec = frame(
        encodeRecord({
          t: "batch",
          seq: b.seq,
          at: b.createdAt,
          d: toDeltaRows(b.deltas),
          set: [],
          drop: [],
        }),
      );
      await out.write(rec);
      b.bytes = rec.length;
      size += rec.length;
    }
    await out.datasync();
    await out.close();
    await fh.close();
    await rename(tmp, path);
    // The rename itself must be durable, or a crash could resurrect the old file after new appends.
    const dir = await open(dirname(path), "r");
    await dir.sync();
    await dir.close();
    fh = await open(path, "a", 0o600);
    fileBytes = size;
    snapshotBytes = snap.length;
    compactions++;
  }

  async function maybeCompact(): Promise<void> {
    const live = snapshotBytes + pendingBytes();
    if (fileBytes - live > Math.max(options.compactMinBytes ?? 1024 * 1024, live)) await compactNow();
  }

  return {
    append: ({ deltas, changes }) =>
      exclusive(async () => {
        const rows = { set: toBaseRows(changes.set), drop: changes.drop };
        if (deltas.length === 0) {
          if (rows.set.length > 0 || rows.drop.length > 0) {
            await write({ t: "base", ...rows }, true);
            applyBaselineChanges(baselines, changes);
          }
          return null;
        }
        const at = now();
        const estimate = frame(
          encodeRecord({ t: "batch", seq: nextSeq, at, d: toDeltaRows(deltas), ...rows }),
        ).length;
        const full = pending.size + 1 > maxBatches || pendingBytes() + estimate > maxBytes;
        const unsent = full ? [...pending.values()].filter((b) => !sent.has(b.seq)) : [];
        const merged = unsent.length > 0 ? mergeDeltas(...unsent.map((b) => b.deltas), deltas) : [];
        const maxSamples =
          (typeof options.maxSamples === "function" ? options.maxSamples() : options.maxSamples) ??
          Number.POSITIVE_INFINITY;
        const canMerge = unsent.length > 0 && merged.length <= maxSamples;
        overLimit = full && !canMerge;
        let record: QueueRecord;
        let batch: PendingBatch;
        if (canMerge) {
          const seq = Math.min(...unsent.map((b) => b.seq));
          const createdAt = Math.min(...unsent.map((b) => b.createdAt));
          const replaces = unsent.map((b) => b.seq);
          record = {
            t: "merge",
            seq,
            next: seq + 1,
            at: createdAt,
            replaces,
            d: toDeltaRows(merged),
            ...rows,
          };
          batch = { seq, createdAt, deltas: merged, bytes: 0 };
        } else {
          record = { t: "batch", seq: nextSeq, at, d: toDeltaRows(deltas), ...rows };
          batch = { seq: nextSeq, createdAt: at, deltas: [...deltas], bytes: 0 };
        }
        batch.bytes = await write(record, true);
        // Memory changes only after the frame is durable: a failed write leaves state as it was.
        nextSeq = batch.seq + 1;
        if (record.t === "merge") {
          for (const old of record.replaces) pending.delete(old);
          merges++;
        }
        pending.set(batch.seq, batch);
        applyBaselineChanges(baselines, changes);
        await maybeCompact();
        return batch;
      }),
    pending: () => [...pending.values()].sort((a, b) => a.seq - b.seq),
    markSent: (seq) => void sent.add(seq),
    ack: (seq) =>
      exclusive(async () => {
        if (!pending.has(seq)) return;
        // No fsync: a lost ack only means a resend, which the collector answers as a replay.
        await write({ t: "ack", seqs: [seq] }, false);
        pending.delete(seq);
        sent.delete(seq);
        await maybeCompact();
      }),
    advanceSeq: (lastStored) =>
      exclusive(async () => {
        if (nextSeq > lastStored) return;
        await write({ t: "seq", next: lastStored + 1 }, true);
        nextSeq = lastStored + 1;
      }),
    baselines: () => baselines,
    metrics: () => {
      const oldest = Math.min(...[...pending.values()].map((b) => b.createdAt));
      return {
        pendingBatches: pending.size,
        pendingBytes: pendingBytes(),
        oldestPendingAgeMs: pending.size > 0 ? Math.max(0, now() - oldest) : 0,
        fileBytes,
        nextSeq,
        merges,
        compactions,
        overLimit,
        truncatedBytes,
      };
    },
    compact: () => exclusive(compactNow),
    close: () => exclusive(async () => fh.close()),
  };
}
