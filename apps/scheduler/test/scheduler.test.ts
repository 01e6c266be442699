import { randomBytes } from "node:crypto";
import { createLogger, manualClock, Registry } from "@vpnpanel/common";
import { type Coordinator, createMemoryCoordinator, createRedisCoordinator } from "@vpnpanel/coord";
import { createScheduler, type Job } from "@vpnpanel/scheduler";
import { afterAll, describe, expect, it } from "vitest";
import { redisUrl } from "../../../test/support/control-plane";

// The job runner on its own: real locks (Redis when REDIS_URL is set, else the in-process ones a
// single-process deployment uses), the manual clock, the process metrics registry.

const log = createLogger({ service: "test", level: "silent" });
const coords: Coordinator[] = [];
afterAll(async () => {
  for (const c of coords) await c.close();
});

/** Two coordinators that share one lock space, like two scheduler replicas. */
function sharedCoordinators(clock: ReturnType<typeof manualClock>): [Coordinator, Coordinator] {
  if (redisUrl) {
    const prefix = `vpt:${randomBytes(4).toString("hex")}:`;
    const pair: [Coordinator, Coordinator] = [
      createRedisCoordinator(redisUrl, { keyPrefix: prefix }),
      createRedisCoordinator(redisUrl, { keyPrefix: prefix }),
    ];
    coords.push(...pair);
    return pair;
  }
  const one = createMemoryCoordinator(clock);
  coords.push(one);
  return [one, one];
}

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
};

describe("scheduler", () => {
  it("with two replicas sharing the lock, a due job runs on exactly one", async () => {
    const clock = manualClock();
    const [a, b] = sharedCoordinators(clock);
    let runs = 0;
    const g = gate();
    const job: Job = {
      name: "exclusive",
      intervalMs: 1000,
      run: async () => {
        runs++;
        await g.opened;
      },
    };
    const registry = new Registry();
    const one = createScheduler({ jobs: [job], locks: a.locks, clock, log, registry });
    const two = createScheduler({ jobs: [job], locks: b.locks, clock, log, registry });
    const first = one.tick();
    await new Promise((r) => setTimeout(r, 50));
    await two.tick(); // the other replica finds the lock held and skips
    g.open();
    await first;
    expect(runs).toBe(1);
    expect(await registry.getSingleMetricAsString("scheduler_job_skipped_total")).toContain(
      'job="exclusive"} 1',
    );
    // Once released, the next due run may happen on either replica, still once.
    clock.advance(1000);
    await Promise.all([one.tick(), two.tick()]);
    expect(runs).toBe(2);
  });

  it("renews the lock while a long run holds it, and releases it afterwards", async () => {
    const clock = manualClock();
    const [a, b] = sharedCoordinators(clock);
    const g = gate();
    const job: Job = { name: "long", intervalMs: 1000, lockTtlMs: 150, run: () => g.opened };
    const one = createScheduler({ jobs: [job], locks: a.locks, clock, log });
    const running = one.runNow("long");
    // Well past the 150 ms lease: the renewal keeps it.
    await new Promise((r) => setTimeout(r, 400));
    expect(await b.locks.tryAcquire("job:long", 1000)).toBeNull();
    g.open();
    expect(await running).toBe("ran");
    const again = await b.locks.tryAcquire("job:long", 1000);
    expect(again).not.toBeNull();
    await again!.release();
  });

  it("runs a job when its interval has passed on the injected clock, not before", async () => {
    const clock = manualClock("2026-03-01T00:00:00Z");
    const coord = createMemoryCoordinator(clock);
    coords.push(coord);
    const seen: string[] = [];
    const s = createScheduler({
      jobs: [{ name: "tick", intervalMs: 1000, run: async ({ now }) => void seen.push(now.toISOString()) }],
      locks: coord.locks,
      clock,
      log,
    });
    await s.tick();
    await s.tick();
    clock.advance(999);
    await s.tick();
    clock.advance(1);
    await s.tick();
    clock.advance(10_000); // a long pause runs the job once, not ten times
    await s.tick();
    await s.tick();
    expect(seen).toEqual([
      "2026-03-01T00:00:00.000Z",
      "2026-03-01T00:00:01.000Z",
      "2026-03-01T00:00:11.000Z",
    ]);
  });

  it("a run can ask to run sooner than its interval (the next expiry), never sooner than its minimum", async () => {
    const clock = manualClock("2026-03-01T00:00:00Z");
    const coord = createMemoryCoordinator(clock);
    coords.push(coord);
    const runs: number[] = [];
    let hint = 2_000;
    const s = createScheduler({
      jobs: [
        {
          name: "hinted",
          intervalMs: 10_000,
          minIntervalMs: 100,
          run: async ({ now }) => {
            runs.push(now.getTime() - Date.parse("2026-03-01T00:00:00Z"));
            return { nextRunAt: new Date(now.getTime() + hint) };
          },
        },
      ],
      locks: coord.locks,
      clock,
      log,
    });
    await s.tick(); // at 0; asks for 2 s
    clock.advance(1_999);
    await s.tick();
    clock.advance(1);
    await s.tick(); // at 2 s
    hint = -5_000; // "now, please": bounded by the 100 ms minimum
    clock.advance(2_000);
    await s.tick(); // at 4 s (the 2 s hint)
    clock.advance(50);
    await s.tick();
    clock.advance(50);
    await s.tick(); // at 4.1 s
    expect(runs).toEqual([0, 2_000, 4_000, 4_100]);
  });

  it("reports last run, duration and failures in the process registry", async () => {
    const clock = manualClock("2026-03-01T00:00:00Z");
    const coord = createMemoryCoordinator(clock);
    coords.push(coord);
    const registry = new Registry();
    const s = createScheduler({
      jobs: [
        { name: "ok", intervalMs: 1000, run: async () => ({ done: 1 }) },
        {
          name: "broken",
          intervalMs: 1000,
          run: async () => {
            throw new Error("boom");
          },
        },
      ],
      locks: coord.locks,
      clock,
      log,
      registry,
    });
    await s.tick();
    expect(await s.runNow("broken")).toBe("failed");
    const text = await registry.metrics();
    expect(text).toContain('scheduler_job_last_run_timestamp_seconds{job="ok"} 1772323200');
    expect(text).not.toContain('scheduler_job_last_run_timestamp_seconds{job="broken"}');
    expect(text).toContain('scheduler_job_failures_total{job="broken"} 2');
    expect(text).toContain('scheduler_job_duration_seconds_count{job="ok"} 1');
  });

  it("stop() aborts a running job at its next checkpoint and waits for it", async () => {
    const clock = manualClock();
    const coord = createMemoryCoordinator(clock);
    coords.push(coord);
    let batches = 0;
    const s = createScheduler({
      jobs: [
        {
          name: "batches",
          intervalMs: 1000,
          run: async ({ signal }) => {
            while (!signal.aborted) {
              batches++;
              await new Promise((r) => setTimeout(r, 10));
            }
          },
        },
      ],
      locks: coord.locks,
      clock,
      log,
    });
    void s.tick();
    await new Promise((r) => setTimeout(r, 50));
    await s.stop();
    const after = batches;
    await new Promise((r) => setTimeout(r, 30));
    expect(batches).toBe(after);
    expect(after).toBeGreaterThan(0);
  });
});
