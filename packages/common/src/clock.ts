/** Time is injected everywhere so that time-driven behaviour is tested without sleeping. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A manually driven clock for tests. */
export function manualClock(start: Date | string = "2026-01-01T00:00:00Z") {
  let t = new Date(start).getTime();
  return {
    now: () => new Date(t),
    set(d: Date | string) {
      t = new Date(d).getTime();
    },
    advance(ms: number) {
      t += ms;
    },
  };
}
