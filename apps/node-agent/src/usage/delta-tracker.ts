// Turns absolute engine counters into usage deltas against the agent's own last-seen values.
//
// Rules, per (engine, user):
//   - no baseline, or the reading's generation differs from the baseline's → the whole value is new
//     (a new core process / re-created interface starts from zero, even if it has already grown past
//     the old baseline by the time we read it);
//   - same generation but either direction went down → an unobserved restart: the whole value is new
//     (clamping to 0 or skipping the sample would lose the traffic since the restart);
//   - otherwise delta = value − baseline.
//   - A final reading (taken before a removal) is added in like any other, then the baseline is
//     dropped: the engine guarantees the user's next counter starts from zero.
//
// This module is pure. Persistence lives in the queue: every batch record carries the baseline
// changes that produced it, in one CRC-framed write (see usage-recorder.ts for the crash invariant).

import type { EngineKind, UsageReading } from "../engines/types";

export interface Baseline {
  generation: string;
  up: number;
  down: number;
}

/** Read access to baselines by key: a Map, or the queue's compact table (baseline-table.ts). */
export interface Baselines extends Iterable<[string, Baseline]> {
  get(key: string): Baseline | undefined;
  readonly size: number;
}

export interface UsageDelta {
  engine: EngineKind;
  userId: string;
  up: number;
  down: number;
}

export interface BaselineChanges {
  set: Array<[key: string, baseline: Baseline]>;
  drop: string[];
}

export interface DeltaComputation {
  deltas: UsageDelta[];
  changes: BaselineChanges;
}

export function baselineKey(engine: EngineKind, userId: string): string {
  return `${engine}:${userId}`;
}

export function parseBaselineKey(key: string): { engine: EngineKind; userId: string } {
  const i = key.indexOf(":");
  return { engine: key.slice(0, i) as EngineKind, userId: key.slice(i + 1) };
}

export function computeDeltas(
  baselines: Baselines,
  engine: EngineKind,
  readings: readonly UsageReading[],
  options: { final?: boolean } = {},
): DeltaComputation {
  // Later readings of the same key in one call see the earlier ones (e.g. a sample and a final).
  const overlay = new Map<string, Baseline>();
  const sums = new Map<string, UsageDelta>();
  for (const r of readings) {
    const key = baselineKey(engine, r.userId);
    const base = overlay.get(key) ?? baselines.get(key);
    const fresh = !base || base.generation !== r.generation || r.up < base.up || r.down < base.down;
    const up = fresh ? r.up : r.up - base.up;
    const down = fresh ? r.down : r.down - base.down;
    if (up > 0 || down > 0) {
      const sum = sums.get(key);
      if (sum) {
        sum.up += up;
        sum.down += down;
      } else sums.set(key, { engine, userId: r.userId, up, down });
    }
    overlay.set(key, { generation: r.generation, up: r.up, down: r.down });
  }
  const changes: BaselineChanges = { set: [], drop: [] };
  for (const [key, next] of overlay) {
    const prev = baselines.get(key);
    if (options.final) {
      if (prev) changes.drop.push(key);
    } else if (
      !prev ||
      prev.generation !== next.generation ||
      prev.up !== next.up ||
      prev.down !== next.down
    ) {
      changes.set.push([key, next]);
    }
  }
  return { deltas: [...sums.values()], changes };
}

/** Applies changes to a baseline map in place (used by the queue on append and on recovery). */
export function applyBaselineChanges(
  baselines: { set(key: string, baseline: Baseline): unknown; delete(key: string): unknown },
  changes: BaselineChanges,
): void {
  for (const [key, baseline] of changes.set) baselines.set(key, baseline);
  for (const key of changes.drop) baselines.delete(key);
}

/** Sums deltas per (engine, user); used when batches are merged. */
export function mergeDeltas(...lists: ReadonlyArray<readonly UsageDelta[]>): UsageDelta[] {
  const out = new Map<string, UsageDelta>();
  for (const list of lists) {
    for (const d of list) {
      const key = baselineKey(d.engine, d.userId);
      const sum = out.get(key);
      if (sum) {
        sum.up += d.up;
        sum.down += d.down;
      } else out.set(key, { ...d });
    }
  }
  return [...out.values()];
}

/** Baselines whose counter life has ended (generation not live any more) — safe to forget. */
export function staleBaselines(
  baselines: Baselines,
  engine: EngineKind,
  liveGenerations: ReadonlySet<string>,
): string[] {
  const prefix = `${engine}:`;
  const out: string[] = [];
  for (const [key, b] of baselines) {
    if (key.startsWith(prefix) && !liveGenerations.has(b.generation)) out.push(key);
  }
  return out;
}
