import {
  type ControlPlane,
  pruneRetention,
  type RunOptions,
  rotateSigningKeysIfDue,
} from "@vpnpanel/control";
import type { Job } from "./scheduler";

// The scheduler's own jobs: the subscriber lifecycle, JWT key rotation, webhooks and retention. Every
// one is idempotent (re-running it changes nothing twice) and stops between batches when its signal
// fires. Other roles' jobs (traffic partitions and rollups) are passed to the scheduler beside these.

export interface LifecycleJobOptions {
  /** Called after each committed expiry batch (the benchmark measures expiry delay with it). */
  onExpired?: RunOptions["onBatch"];
  expiryIntervalMs?: number;
}

export function lifecycleJobs(cp: ControlPlane, o: LifecycleJobOptions = {}): Job[] {
  const jobs = cp.lifecycleJobs;
  return [
    {
      // Due rows are found through subscriptions_expiry_idx; every second keeps the cut-off within 2 s.
      name: "subscription-expiry",
      intervalMs: o.expiryIntervalMs ?? 1000,
      run: async ({ signal }) => jobs.expireDue({ signal, ...(o.onExpired ? { onBatch: o.onExpired } : {}) }),
    },
    {
      name: "subscription-hold",
      intervalMs: 5000,
      run: async ({ signal }) => ({ activated: await jobs.activateHeld({ signal }) }),
    },
    {
      name: "subscription-usage-reset",
      intervalMs: 5000,
      run: async ({ signal }) => ({ reset: await jobs.resetPeriods({ signal }) }),
    },
    {
      name: "subscription-next-plan",
      intervalMs: 5000,
      run: async ({ signal }) => ({ switched: await jobs.switchLimited({ signal }) }),
    },
    {
      name: "jwt-key-rotation",
      intervalMs: 60_000,
      run: async () => {
        const r = await rotateSigningKeysIfDue(cp.database.db, cp.box, cp.clock, {
          everyHours: cp.config.JWT_KEY_ROTATION_HOURS,
          accessTtlSeconds: cp.config.JWT_ACCESS_TTL_SECONDS,
        });
        // This replica signs with the new key at once; the others pick it up on their next reload.
        if (r.rotated) await cp.keys.refresh();
        return r;
      },
    },
    {
      name: "webhook-fanout",
      intervalMs: 1000,
      run: async ({ signal }) => cp.webhookDelivery.fanOut({ signal }),
    },
    {
      name: "webhook-delivery",
      intervalMs: 1000,
      // Attempts can take up to WEBHOOK_TIMEOUT_SECONDS; the lease must outlast a slow batch.
      lockTtlMs: Math.max(30_000, cp.config.WEBHOOK_TIMEOUT_SECONDS * 3000),
      run: async ({ signal }) => cp.webhookDelivery.deliverDue({ signal }),
    },
    {
      name: "retention",
      intervalMs: 3_600_000,
      run: async ({ signal }) =>
        pruneRetention(cp.database.db, cp.clock, cp.config.OUTBOX_RETENTION_HOURS, signal),
    },
  ];
}
