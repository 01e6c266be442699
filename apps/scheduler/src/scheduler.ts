import type { Clock, Logger } from "@vpnpanel/common";
import { Counter, Gauge, Histogram, Registry } from "@vpnpanel/common";
import type { ControlPlane } from "@vpnpanel/control";

type Locks = ControlPlane["coord"]["locks"];

// A small job runner for the scheduler role. Each job has a name, an interval and an idempotent
// `run`. A tick starts every job whose interval has passed on the injected clock (tests drive the
// clock and call `tick()`; production sleeps until the earliest due job, at most `tickMs`). A run
// may ask to run again sooner (`nextRunAt`): the expiry job wakes at the next known expiry. Before
// running, a job takes the lock `job:<name>` (Redis with REDIS_URL, so exactly one replica runs it
// at a time; in-process otherwise), renews it while running, and stops at its next checkpoint when
// the renewal fails.

export interface JobContext {
  now: Date;
  /** Aborted when the lock was lost or the scheduler stops: finish the current batch and return. */
  signal: AbortSignal;
  log: Logger;
}

export interface Job {
  name: string;
  /** Longest time between two runs. */
  intervalMs: number;
  /** Shortest time between two runs when the job asks to run sooner (default: min(100 ms, interval)). */
  minIntervalMs?: number;
  /** Lock lease; renewed every third of it while the job runs (default: max(30 s, 3 × interval)). */
  lockTtlMs?: number;
  /**
   * What it did (counts are logged when any is non-zero). A `nextRunAt` Date in the result asks for
   * the next run then, if that is sooner than the interval (e.g. the next expiry the job knows of).
   */
  run(ctx: JobContext): Promise<unknown>;
}

export interface SchedulerOptions {
  jobs: Job[];
  locks: Locks;
  clock: Clock;
  log: Logger;
  /** The process registry that `/metrics` serves; a private one when omitted. */
  registry?: Registry;
  /** How often the timer looks for due jobs (production only). */
  tickMs?: number;
}

export interface Scheduler {
  /** Starts every due job and resolves when those runs have finished (tests await it). */
  tick(): Promise<void>;
  /** Runs one job now, regardless of its interval (still under its lock). */
  runNow(name: string): Promise<"ran" | "locked" | "failed">;
  start(): void;
  /** Stops the timer, aborts running jobs at their next checkpoint and waits for them. */
  stop(): Promise<void>;
}

function metricsOn(registry: Registry) {
  const get = <T>(name: string, make: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    lastRun: get(
      "scheduler_job_last_run_timestamp_seconds",
      () =>
        new Gauge({
          name: "scheduler_job_last_run_timestamp_seconds",
          help: "When each scheduler job last finished successfully (unix seconds)",
          labelNames: ["job"],
          registers: [registry],
        }),
    ),
    duration: get(
      "scheduler_job_duration_seconds",
      () =>
        new Histogram({
          name: "scheduler_job_duration_seconds",
          help: "Duration of scheduler job runs",
          labelNames: ["job"],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
          registers: [registry],
        }),
    ),
    failures: get(
      "scheduler_job_failures_total",
      () =>
        new Counter({
          name: "scheduler_job_failures_total",
          help: "Scheduler job runs that threw",
          labelNames: ["job"],
          registers: [registry],
        }),
    ),
    skipped: get(
      "scheduler_job_skipped_total",
      () =>
        new Counter({
          name: "scheduler_job_skipped_total",
          help: "Due runs skipped because another replica held the job's lock",
          labelNames: ["job"],
          registers: [registry],
        }),
    ),
  };
}

export function createScheduler(o: SchedulerOptions): Scheduler {
  const names = new Set<string>();
  for (const j of o.jobs) {
    if (names.has(j.name)) throw new Error(`scheduler job "${j.name}" is registered twice`);
    names.add(j.name);
  }
  const m = metricsOn(o.registry ?? new Registry());
  let stopped = false;
  const running = new Map<string, Promise<"ran" | "locked" | "failed">>();
  /** One controller per run: aborted when its lock is lost or the scheduler stops. */
  const controllers = new Set<AbortController>();
  const nextDue = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;

  async function execute(job: Job, startedAt: number): Promise<"ran" | "locked" | "failed"> {
    const ttl = job.lockTtlMs ?? Math.max(30_000, 3 * job.intervalMs);
    const log = o.log.child({ job: job.name });
    let lock: Awaited<ReturnType<Locks["tryAcquire"]>>;
    try {
      lock = await o.locks.tryAcquire(`job:${job.name}`, ttl);
    } catch (err) {
      m.failures.inc({ job: job.name });
      log.error({ err }, "could not reach the lock service; job skipped");
      return "failed";
    }
    if (!lock) {
      m.skipped.inc({ job: job.name });
      return "locked";
    }
    const lost = new AbortController();
    controllers.add(lost);
    const renewal = setInterval(
      () => {
        lock!.renew(ttl).then(
          (ok) => {
            if (!ok) {
              log.warn("lost the job lock to another replica; stopping at the next checkpoint");
              lost.abort();
            }
          },
          () => lost.abort(),
        );
      },
      Math.max(50, Math.floor(ttl / 3)),
    );
    const end = m.duration.startTimer({ job: job.name });
    try {
      const result = await job.run({ now: o.clock.now(), signal: lost.signal, log });
      m.lastRun.set({ job: job.name }, o.clock.now().getTime() / 1000);
      const hint = (result as { nextRunAt?: unknown } | undefined)?.nextRunAt;
      if (hint instanceof Date) {
        const soonest = startedAt + (job.minIntervalMs ?? Math.min(100, job.intervalMs));
        const due = nextDue.get(job.name) ?? startedAt + job.intervalMs;
        nextDue.set(job.name, Math.max(soonest, Math.min(due, hint.getTime())));
      }
      if (result && Object.values(result).some((v) => typeof v === "number" && v > 0))
        log.info(result, "job ran");
      return "ran";
    } catch (err) {
      m.failures.inc({ job: job.name });
      log.error({ err }, "job failed");
      return "failed";
    } finally {
      end();
      clearInterval(renewal);
      controllers.delete(lost);
      await lock.release().catch(() => {});
    }
  }

  function launch(job: Job) {
    const current = running.get(job.name);
    if (current) return current;
    const p = execute(job, o.clock.now().getTime()).finally(() => running.delete(job.name));
    running.set(job.name, p);
    return p;
  }

  async function tick() {
    if (stopped) return;
    const now = o.clock.now().getTime();
    const started: Array<Promise<unknown>> = [];
    for (const job of o.jobs) {
      if (running.has(job.name) || (nextDue.get(job.name) ?? 0) > now) continue;
      // The next run is due one interval after this one started, so a slow run is not followed
      // immediately by another, and a missed interval is run once, not caught up.
      nextDue.set(job.name, now + job.intervalMs);
      started.push(launch(job));
    }
    await Promise.all(started);
  }

  return {
    tick,

    async runNow(name) {
      const job = o.jobs.find((j) => j.name === name);
      if (!job) throw new Error(`no scheduler job "${name}"`);
      return launch(job);
    },

    start() {
      if (timer || stopped) return;
      const loop = () => {
        void tick();
        // Sleep until the earliest due job (a run's hint included), but at most tickMs.
        const now = o.clock.now().getTime();
        const earliest = Math.min(...o.jobs.map((j) => nextDue.get(j.name) ?? now));
        timer = setTimeout(loop, Math.min(o.tickMs ?? 200, Math.max(5, earliest - now)));
      };
      loop();
      o.log.info({ jobs: o.jobs.map((j) => `${j.name}@${j.intervalMs}ms`) }, "scheduler started");
    },

    async stop() {
      clearTimeout(timer);
      timer = undefined;
      stopped = true;
      for (const c of controllers) c.abort();
      await Promise.allSettled(running.values());
    },
  };
}
