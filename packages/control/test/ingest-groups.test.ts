import { systemActor } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedSubscribers } from "../../../apps/collector/test/support/seed";
import { createTestControlPlane, type TestControlPlane } from "../../../test/support/control-plane";

// The ingest transaction's bookkeeping for groups: batches of several tenants in one transaction
// (the lock statement returns only the exceptions), subscriptions without a counter row, and quota
// decisions that count only the batches stored now (not replays in the same group).

let t: TestControlPlane;
let tenantA: string;
let tenantB: string;
let nodeA: string;
let nodeB: string;
let a: string[];
let b: string[];

beforeAll(async () => {
  t = await createTestControlPlane();
  tenantA = (await t.cp.tenants.create(systemActor(), { name: "A", slug: "ig-a" })).id;
  tenantB = (await t.cp.tenants.create(systemActor(), { name: "B", slug: "ig-b" })).id;
  const db = t.cp.database.db;
  a = (await seedSubscribers(db, t.cp.box, { tenantId: tenantA, count: 3, quotaBytes: null })).map(
    (s) => s.subscriptionId,
  );
  b = (await seedSubscribers(db, t.cp.box, { tenantId: tenantB, count: 2, quotaBytes: null })).map(
    (s) => s.subscriptionId,
  );
  nodeA = (await t.cp.nodes.create(systemActor(), tenantA, { name: "na", address: "a" })).id;
  nodeB = (await t.cp.nodes.create(systemActor(), tenantB, { name: "nb", address: "b" })).id;
});
afterAll(async () => {
  await t?.close();
});

const used = async (id: string) =>
  (
    await queryRows<{ used: string }>(
      t.cp.database.db,
      sql`SELECT used_bytes::text AS used FROM subscription_usage WHERE subscription_id = ${id}`,
    )
  )[0]?.used;

const sample = (userId: string, up: bigint, down: bigint, engine = 1) => ({ userId, engine, up, down });

describe("ingest groups", () => {
  it("a group across tenants counts each sample only for its own tenant's subscriptions", async () => {
    const r = await t.cp.ingestor.ingest([
      {
        nodeId: nodeA,
        tenantId: tenantA,
        seq: 1n,
        sampledAt: t.clock.now(),
        samples: [
          sample(a[0]!, 10n, 20n),
          sample(b[0]!, 5n, 5n), // tenant B's subscription reported by tenant A's node
          sample("sub_unknown", 1n, 1n),
          sample(a[0]!, 1n, 1n, 2),
          sample(a[0]!, 1n, 1n), // merged with the first
          sample(a[1]!, 9n, 9n, 7), // no such engine
        ],
      },
      {
        nodeId: nodeB,
        tenantId: tenantB,
        seq: 1n,
        sampledAt: t.clock.now(),
        samples: [sample(b[0]!, 3n, 4n), sample(a[1]!, 8n, 8n)],
      },
    ]);
    expect(r.outcomes.map((o) => [o.duplicate, o.counted, o.skipped])).toEqual([
      [false, 2, 3],
      [false, 1, 1],
    ]);
    expect(await used(a[0]!)).toBe("34");
    expect(await used(a[1]!)).toBe("0");
    expect(await used(b[0]!)).toBe("7");
    const batches = await queryRows<{ node_id: string; samples: number; skipped: number; bytes: string }>(
      t.cp.database.db,
      sql`SELECT node_id, samples, skipped, bytes::text AS bytes FROM usage_batches
          WHERE node_id IN (${nodeA}, ${nodeB}) AND seq = 1 ORDER BY node_id = ${nodeB}`,
    );
    expect(batches.map((x) => [x.samples, x.skipped, x.bytes])).toEqual([
      [2, 3, "34"],
      [1, 1, "7"],
    ]);
  });

  it("a subscription without a counter row is counted and gets one", async () => {
    await t.cp.database.db.execute(sql`DELETE FROM subscription_usage WHERE subscription_id = ${a[2]!}`);
    const r = await t.cp.ingestor.ingest([
      {
        nodeId: nodeA,
        tenantId: tenantA,
        seq: 2n,
        sampledAt: t.clock.now(),
        samples: [sample(a[2]!, 4n, 6n)],
      },
    ]);
    expect(r.outcomes[0]).toMatchObject({ duplicate: false, counted: 1, skipped: 0 });
    expect(await used(a[2]!)).toBe("10");
  });

  it("the quota decision counts only the batches stored now, not a replay in the same group", async () => {
    const sub = b[1]!;
    await t.cp.database.db.execute(
      sql`UPDATE subscriptions SET quota_bytes = 100 WHERE id = ${sub} AND state = 'active'`,
    );
    const stored = await t.cp.ingestor.ingest([
      {
        nodeId: nodeB,
        tenantId: tenantB,
        seq: 10n,
        sampledAt: t.clock.now(),
        samples: [sample(sub, 30n, 0n)],
      },
    ]);
    expect(stored.cutOff).toEqual([]);
    // A replay of seq 10 carrying (different) big numbers, and a new batch: only the new one counts.
    const r = await t.cp.ingestor.ingest([
      {
        nodeId: nodeB,
        tenantId: tenantB,
        seq: 10n,
        sampledAt: t.clock.now(),
        samples: [sample(sub, 1000n, 0n)],
      },
      {
        nodeId: nodeB,
        tenantId: tenantB,
        seq: 11n,
        sampledAt: t.clock.now(),
        samples: [sample(sub, 20n, 0n)],
      },
    ]);
    expect(r.outcomes.map((o) => o.duplicate)).toEqual([true, false]);
    expect(r.cutOff).toEqual([]);
    expect(await used(sub)).toBe("50");
    const crossing = await t.cp.ingestor.ingest([
      {
        nodeId: nodeB,
        tenantId: tenantB,
        seq: 12n,
        sampledAt: t.clock.now(),
        samples: [sample(sub, 25n, 25n)],
      },
    ]);
    expect(crossing.cutOff).toEqual([sub]);
    const state = await queryRows<{ state: string }>(
      t.cp.database.db,
      sql`SELECT state FROM subscriptions WHERE id = ${sub}`,
    );
    expect(state[0]!.state).toBe("limited");
  });
});
