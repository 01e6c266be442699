// Periodic jobs of the daemon. Each tick re-arms itself after it finished (never two at once), reads
// its interval at every arming (the control plane's Policy can change it), and can be re-armed early
// when the interval changes.

export interface Ticker {
  /** Re-arms with the current interval (unless the tick is running; it re-arms itself after). */
  rearm(): void;
  stop(): void;
}

export function startTicker(
  intervalMs: () => number,
  tick: () => Promise<void>,
  onError: (error: unknown) => void,
): Ticker {
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let stopped = false;
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = stopped ? null : setTimeout(run, intervalMs());
  };
  const run = async () => {
    timer = null;
    running = true;
    await tick().catch(onError);
    running = false;
    arm();
  };
  arm();
  return {
    rearm() {
      if (!running) arm();
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
