// The usage baselines (last absolute counters seen per engine and user) in columns: a slot number per
// `"engine:user"` key and three typed-array slots, instead of a {generation, up, down} object (and two
// boxed numbers once counters pass 2 GiB) per entry. With two engines a 100k node holds 200k
// baselines, so this is roughly half of their live heap. The queue's record format is unchanged:
// entries are read and written as [key, Baseline] pairs, built on demand.

import type { Baseline, Baselines } from "./delta-tracker";

export interface BaselineTable extends Baselines {
  has(key: string): boolean;
  set(key: string, baseline: Baseline): void;
  delete(key: string): void;
  clear(): void;
}

const INITIAL_CAPACITY = 1_024;

export function createBaselineTable(): BaselineTable {
  const slots = new Map<string, number>();
  let up = new Float64Array(INITIAL_CAPACITY);
  let down = new Float64Array(INITIAL_CAPACITY);
  let gen = new Int32Array(INITIAL_CAPACITY);
  /** Generations are few (one per core life / interface): stored once, referenced by number. */
  const generations: string[] = [];
  const generationIds = new Map<string, number>();
  const free: number[] = [];
  let used = 0;

  function generationId(generation: string): number {
    let id = generationIds.get(generation);
    if (id === undefined) {
      id = generations.length;
      generations.push(generation);
      generationIds.set(generation, id);
    }
    return id;
  }

  function grow(): void {
    const capacity = up.length * 2;
    const next = {
      up: new Float64Array(capacity),
      down: new Float64Array(capacity),
      gen: new Int32Array(capacity),
    };
    next.up.set(up);
    next.down.set(down);
    next.gen.set(gen);
    ({ up, down, gen } = next);
  }

  function newSlot(): number {
    const reused = free.pop();
    if (reused !== undefined) return reused;
    if (used === up.length) grow();
    return used++;
  }

  const read = (slot: number): Baseline => ({
    generation: generations[gen[slot] as number] as string,
    up: up[slot] as number,
    down: down[slot] as number,
  });

  function* entries(): IterableIterator<[string, Baseline]> {
    for (const [key, slot] of slots) yield [key, read(slot)];
  }

  const table: BaselineTable = {
    get size() {
      return slots.size;
    },
    get(key) {
      const slot = slots.get(key);
      return slot === undefined ? undefined : read(slot);
    },
    has: (key) => slots.has(key),
    set(key, baseline) {
      let slot = slots.get(key);
      if (slot === undefined) {
        slot = newSlot();
        slots.set(key, slot);
      }
      up[slot] = baseline.up;
      down[slot] = baseline.down;
      gen[slot] = generationId(baseline.generation);
    },
    delete(key) {
      const slot = slots.get(key);
      if (slot === undefined) return;
      slots.delete(key);
      free.push(slot);
    },
    clear() {
      slots.clear();
      free.length = 0;
      used = 0;
    },
    [Symbol.iterator]: entries,
  };
  return table;
}
