import { systemActor } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedSubscribers } from "../../../apps/collector/test/support/seed";
import { createTestControlPlane, type TestControlPlane } from "../../../test/support/control-plane";

// The maintenance jobs (partitions, watermark pruning, change-log pruning) and the ingest
// transaction under concurrent writers.

let t: TestControlPlane;
let tenantId: string;
let nodeId: string;
let subs: Array<{ subscriptionId: string }>;
const DAY = 86_400_000;

beforeAll(async () => {
  t = await createTestControlPlane();
  tenantId = (await t.cp.tenants.create(systemActor(), { name: "TM", slug: "tm" })).id;
  subs = await seedSubscribers(t.cp.database.db, t.cp.box, { tenantId, count: 50, quotaBytes: null });
  nodeId = (await t.cp.nodes.create(systemActor(), tenantId, { name: "n", address: "a" })).id;
});
afterAll(async () => {
  await t?.close();
});

const partitions = async () =>
  (
    await queryRows<{ relname: string }>(
      t.cp.database.db,
      sql`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'traffic_events' ORDER BY 1`,
    )
  ).map((r) => r.relname);

const day = (offset: number) =>
  new Date(t.clock.now().getTime() + offset * DAY).toISOString().slice(0, 10).replaceAll("-", "");

describe("partitions", () => {
  it("are created ahead and dropped after retention", async () => {
    await t.cp.trafficMaintenance.ensurePartitions(3);
    const names = await partitions();
    for (const offset of [-1, 0, 1, 2, 3]) expect(names).toContain(`traffic_events_p${day(offset)}`);
    const old = new Date(t.clock.now().getTime() - 40 * DAY).toISOString().slice(0, 10);
    await t.cp.database.db.execute(sql`SELECT traffic_ensure_partitions(${old}::date, 0)`);
    expect(await partitions()).toContain(`traffic_events_p${day(-40)}`);
    const { dropped } = await t.cp.trafficMaintenance.dropExpiredPartitions();
    expect(dropped).toContain(`traffic_events_p${day(-40)}`);
    expect(await partitions()).not.toContain(`traffic_events_p${day(-40)}`);
    expect(await partitions()).toContain(`traffic_events_p${day(0)}`);
  });
});

describe("watermark pruning", () => {
  it("folds only a gap-free old prefix into the floor: a replay below it is a duplicate, a batch in a gap still counts", async () => {
    const db = t.cp.database.db;
    const old = new Date(t.clock.now().getTime() - 10 * DAY).toISOString();
    for (const seq of [1, 2, 3, 5]) {
      await db.execute(sql`INSERT INTO usage_batches (node_id, seq, sampled_at, received_at, samples, bytes)
        VALUES (${nodeId}, ${seq}, ${old}::timestamptz, ${old}::timestamptz, 0, 0)`);
    }
    await db.execute(
      sql`INSERT INTO usage_batches (node_id, seq, sampled_at, samples, bytes) VALUES (${nodeId}, 6, now(), 0, 0)`,
    );
    const { pruned } = await t.cp.trafficMaintenance.pruneUsageBatches();
    expect(pruned).toBe(3);
    const [state] = await queryRows<{ floor: string }>(
      db,
      sql`SELECT floor_seq::text AS floor FROM node_usage_state WHERE node_id = ${nodeId}`,
    );
    expect(state!.floor).toBe("3");
    const ingest = (seq: bigint) =>
      t.cp.ingestor.ingest([
        {
          nodeId,
          tenantId,
          seq,
          sampledAt: t.clock.now(),
          samples: [{ userId: subs[0]!.subscriptionId, engine: 1, up: 1n, down: 0n }],
        },
      ]);
    expect((await ingest(2n)).outcomes[0]!.duplicate).toBe(true);
    expect((await ingest(4n)).outcomes[0]!.duplicate).toBe(false);
    expect(await t.cp.desired.lastStoredSeq(nodeId)).toBe(6n);
  });
});

describe("change-log pruning", () => {
  it("raises the node's floor past what it pruned", async () => {
    const db = t.cp.database.db;
    const rev = (await t.cp.desired.revision(nodeId))!;
    await db.execute(sql`UPDATE node_changes SET at = now() - interval '30 days'
      WHERE node_id = ${nodeId} AND revision <= ${(rev.revision - 1n).toString()}::bigint`);
    const { pruned } = await t.cp.trafficMaintenance.pruneNodeChanges();
    expect(pruned).toBeGreaterThan(0);
    expect((await t.cp.desired.revision(nodeId))!.floorRevision).toBe(rev.revision - 1n);
  });
});

describe("concurrent ingest", () => {
  it("writers with overlapping subscribers in different orders neither deadlock nor lose bytes", async () => {
    const before = await queryRows<{ used: string }>(
      t.cp.database.db,
      sql`SELECT coalesce(sum(used_bytes), 0)::text AS used FROM subscription_usage`,
    );
    const writers = 4;
    const perWriter = 10;
    const jobs: Array<Promise<unknown>> = [];
    for (let w = 0; w < writers; w++) {
      const node = (await t.cp.nodes.create(systemActor(), tenantId, { name: `w${w}`, address: "a" })).id;
      jobs.push(
        (async () => {
          for (let b = 1; b <= perWriter; b++) {
            const order = w % 2 === 0 ? subs : [...subs].reverse();
            await t.cp.ingestor.ingest([
              {
                nodeId: node,
                tenantId,
                seq: BigInt(b),
                sampledAt: t.clock.now(),
                samples: order.map((s) => ({ userId: s.subscriptionId, engine: 1, up: 1n, down: 1n })),
              },
            ]);
          }
        })(),
      );
    }
    await Promise.all(jobs);
    const after = await queryRows<{ used: string }>(
      t.cp.database.db,
      sql`SELECT sum(used_bytes)::text AS used FROM subscription_usage`,
    );
    expect(BigInt(after[0]!.used) - BigInt(before[0]!.used)).toBe(
      BigInt(writers * perWriter * subs.length * 2),
    );
  });
});
