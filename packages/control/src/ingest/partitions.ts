import type { Db } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { sqlState } from "../shared/db-errors";

// Raw traffic partitions on demand. The scheduler creates partitions days ahead; this covers a batch
// whose sampled_at falls on a day without one (an agent's clock ahead, a template database made days
// ago), so such a batch is stored instead of failing forever. DDL never runs inside the ingest
// transaction: it is done before, once per day per process.

const DAY_MS = 86_400_000;

export const utcDay = (d: Date) => d.toISOString().slice(0, 10);

export interface PartitionKeeper {
  ensure(days: Iterable<string>): Promise<void>;
  forget(): void;
}

export function createPartitionKeeper(db: Db): PartitionKeeper {
  const known = new Set<string>();
  return {
    async ensure(days) {
      for (const day of days) {
        if (known.has(day)) continue;
        try {
          await db.execute(sql`SELECT traffic_ensure_partitions(${day}::date, 0)`);
        } catch (e) {
          // Two collectors creating the same partition: the loser sees it exist, which is the goal.
          if (!["42P07", "23505"].includes(sqlState(e) ?? "")) throw e;
        }
        known.add(day);
      }
    },
    forget() {
      known.clear();
    },
  };
}

/** Raw rows are kept for batches sampled within retention, and not absurdly far in the future. */
export function keepsRaw(sampledAt: Date, now: Date, retentionDays: number): boolean {
  const t = sampledAt.getTime();
  return t >= now.getTime() - retentionDays * DAY_MS && t <= now.getTime() + 2 * DAY_MS;
}
