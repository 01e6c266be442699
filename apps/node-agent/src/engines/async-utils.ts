// Small async building blocks shared by the drivers: bounded fan-out, a serial lock for mutations,
// and a typed listener set. Kept dependency-free so they can be unit-tested without an engine.

/**
 * Runs `fn` over `items` with at most `limit` calls in flight and returns results in input order.
 * A rejected call does not stop the others; callers that need per-item errors return them as values.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker);
  await Promise.all(workers);
  return results;
}

/**
 * Serializes async sections. Driver mutations (apply, add, remove, post-restart re-apply) must not
 * interleave: each one reads the registry, talks to the engine, then writes the registry.
 */
export function createSerialLock(): <T>(section: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(section: () => Promise<T>): Promise<T> => {
    const run = tail.then(section, section);
    tail = run.catch(() => undefined);
    return run;
  };
}

// biome-ignore lint/suspicious/noExplicitAny: listener signatures are checked by the Events map.
type AnyListener = (...args: any[]) => void;

export interface Listeners<Events extends { [K in keyof Events]: AnyListener }> {
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void;
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void;
}

export function createListeners<Events extends { [K in keyof Events]: AnyListener }>(
  onListenerError: (error: unknown) => void = () => undefined,
): Listeners<Events> {
  const sets = new Map<keyof Events, Set<AnyListener>>();
  return {
    on(event, listener) {
      let set = sets.get(event);
      if (!set) {
        set = new Set();
        sets.set(event, set);
      }
      set.add(listener);
      return () => set.delete(listener);
    },
    emit(event, ...args) {
      for (const listener of sets.get(event) ?? []) {
        try {
          listener(...args);
        } catch (error) {
          // A faulty listener must not break the supervisor loop that emitted the event.
          onListenerError(error);
        }
      }
    },
  };
}

/** Exponential backoff with a cap; `attempt` counts consecutive failures starting at 1. */
export function backoffDelayMs(attempt: number, baseMs = 500, maxMs = 30_000): number {
  const exp = Math.min(attempt - 1, 30);
  return Math.min(maxMs, baseMs * 2 ** exp);
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

export function groupBy<T, K>(items: Iterable<T>, key: (item: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

export function countBy<T, K>(items: Iterable<T>, key: (item: T) => K): Map<K, number> {
  const out = new Map<K, number>();
  for (const item of items) {
    const k = key(item);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}
