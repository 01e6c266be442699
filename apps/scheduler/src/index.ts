import type { Registry } from "@vpnpanel/common";
import type { ControlPlane } from "@vpnpanel/control";
import { type LifecycleJobOptions, lifecycleJobs } from "./jobs";
import { createScheduler, type Job, type Scheduler } from "./scheduler";

export * from "./jobs";
export * from "./scheduler";

/**
 * The scheduler role: the lifecycle jobs plus `jobs` from other features (e.g. traffic partition
 * maintenance and rollups), on the process registry `/metrics` serves.
 */
export function createSchedulerRole(
  cp: ControlPlane,
  o: { registry?: Registry; jobs?: Job[]; lifecycle?: LifecycleJobOptions; tickMs?: number } = {},
): Scheduler {
  return createScheduler({
    jobs: [...lifecycleJobs(cp, o.lifecycle), ...(o.jobs ?? [])],
    locks: cp.coord.locks,
    clock: cp.clock,
    log: cp.log.child({ role: "scheduler" }),
    ...(o.registry ? { registry: o.registry } : {}),
    ...(o.tickMs ? { tickMs: o.tickMs } : {}),
  });
}
