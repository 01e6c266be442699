// Two small structures the hot path needs: a loader that answers concurrent lookups with one query,
// and a byte-bounded LRU for rendered documents.

/**
 * Collects the keys asked for while earlier loads are in flight and loads them with one call.
 * At most `maxInFlight` loads run at once; keys arriving meanwhile wait for the next one, so batches
 * grow with the load by themselves (one `= ANY($1)` round trip for dozens of requests) while a lone
 * request waits only for `setImmediate`. Each query costs a socket write and a parse on both ends,
 * which is what limits a process doing one query per request.
 */
export function createBatchLoader<V>(
  load: (keys: string[]) => Promise<Map<string, V>>,
  opts: { maxBatch?: number; maxInFlight?: number } = {},
) {
  const maxBatch = opts.maxBatch ?? 500;
  const maxInFlight = opts.maxInFlight ?? 4;
  type Waiter = { resolve: (v: V | undefined) => void; reject: (e: unknown) => void };
  let pending = new Map<string, Waiter[]>();
  let scheduled = false;
  let inFlight = 0;

  const run = (keys: string[], waiters: Map<string, Waiter[]>) => {
    inFlight += 1;
    load(keys)
      .then(
        (found) => {
          for (const k of keys) for (const w of waiters.get(k) ?? []) w.resolve(found.get(k));
        },
        (err) => {
          for (const k of keys) for (const w of waiters.get(k) ?? []) w.reject(err);
        },
      )
      .finally(() => {
        inFlight -= 1;
        if (pending.size > 0) schedule();
      });
  };

  const flush = () => {
    scheduled = false;
    while (pending.size > 0 && inFlight < maxInFlight) {
      const batch = pending;
      if (batch.size <= maxBatch) {
        pending = new Map();
        run([...batch.keys()], batch);
      } else {
        const slice = [...batch.keys()].slice(0, maxBatch);
        const taken = new Map(slice.map((k) => [k, batch.get(k) ?? []]));
        for (const k of slice) batch.delete(k);
        run(slice, taken);
      }
    }
  };

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  }

  return (key: string): Promise<V | undefined> =>
    new Promise((resolve, reject) => {
      const waiters = pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else pending.set(key, [{ resolve, reject }]);
      schedule();
    });
}

/** Least-recently-used map bounded by the total size its callers report for each value. */
export function createLru<V>(maxBytes: number) {
  const entries = new Map<string, { value: V; size: number }>();
  let bytes = 0;
  return {
    get(key: string): V | undefined {
      const e = entries.get(key);
      if (!e) return undefined;
      // Re-insert: a Map iterates in insertion order, so the first key is the least recently used.
      entries.delete(key);
      entries.set(key, e);
      return e.value;
    },
    set(key: string, value: V, size: number) {
      if (size > maxBytes) return;
      const old = entries.get(key);
      if (old) {
        bytes -= old.size;
        entries.delete(key);
      }
      entries.set(key, { value, size });
      bytes += size;
      for (const [k, e] of entries) {
        if (bytes <= maxBytes) break;
        entries.delete(k);
        bytes -= e.size;
      }
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
    clear() {
      entries.clear();
      bytes = 0;
    },
  };
}
