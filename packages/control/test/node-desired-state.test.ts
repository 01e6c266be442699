import { appendOutbox, consumeOutboxPage, reconcileMembers, systemActor } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedSubscribers } from "../../../apps/collector/test/support/seed";
import { createTestControlPlane, type TestControlPlane } from "../../../test/support/control-plane";

// Desired state in the database: assignment strategies applied by the outbox consumer, idempotent
// reconciliation, and the (txid, id) outbox cursor that never skips a late commit.

let t: TestControlPlane;
let tenantId: string;
const sys = systemActor();

beforeAll(async () => {
  t = await createTestControlPlane();
  tenantId = (await t.cp.tenants.create(sys, { name: "DS", slug: "ds" })).id;
});
afterAll(async () => {
  await t?.close();
});

async function drain() {
  let total = 0;
  for (;;) {
    const step = await consumeOutboxPage(t.cp.database.db);
    total += step.events;
    if (step.events === 0) return total;
  }
}

/**
 * Consumes until `count` events went through. The outbox horizon is cluster-wide: a transaction
 * still open anywhere on the server (another test file) holds new events back for a moment.
 */
async function drainAtLeast(count: number) {
  let total = 0;
  const deadline = Date.now() + 15_000;
  while (total < count && Date.now() < deadline) {
    total += await drain();
    if (total < count) await new Promise((r) => setTimeout(r, 50));
  }
  return total;
}

async function assignmentsOf(subscriptionId: string) {
  return queryRows<{ node_id: string; role: string }>(
    t.cp.database.db,
    sql`SELECT node_id, role FROM node_assignments WHERE subscription_id = ${subscriptionId} ORDER BY node_id`,
  );
}

async function created(count: number, tenant = tenantId) {
  const subs = await seedSubscribers(t.cp.database.db, t.cp.box, {
    tenantId: tenant,
    count,
    engines: ["xray"],
  });
  await t.cp.database.db.transaction((tx) =>
    appendOutbox(
      tx,
      subs.map((s) => ({
        tenantId: tenant,
        topic: "user.created",
        subjectId: s.subscriptionId,
        payload: { subscription_id: s.subscriptionId, user_id: s.userId },
      })),
    ),
  );
  await drainAtLeast(subs.length);
  return subs;
}

describe("assignment strategies through the outbox consumer", () => {
  it("round_robin spreads new subscriptions over the nodes, redundancy adds the next one", async () => {
    const tenant = (await t.cp.tenants.create(sys, { name: "RR", slug: "rr" })).id;
    const a = await t.cp.nodes.create(sys, tenant, { name: "a", address: "a", engines: ["xray"] });
    const b = await t.cp.nodes.create(sys, tenant, { name: "b", address: "b", engines: ["xray"] });
    await t.cp.nodes.setAssignmentPolicy(sys, tenant, { strategy: "round_robin", redundancy: 1 });
    const subs = await created(4, tenant);
    const primaries: string[] = [];
    for (const s of subs) {
      const rows = await assignmentsOf(s.subscriptionId);
      expect(rows).toHaveLength(2);
      primaries.push(rows.find((r) => r.role === "primary")!.node_id);
    }
    expect(primaries.sort()).toEqual([a.id, a.id, b.id, b.id].sort());
  });

  it("by_tag uses only tagged nodes; manual assigns nothing", async () => {
    const tenant = (await t.cp.tenants.create(sys, { name: "Tag", slug: "tag" })).id;
    const eu = await t.cp.nodes.create(sys, tenant, {
      name: "eu",
      address: "a",
      tags: ["eu"],
      engines: ["xray"],
    });
    await t.cp.nodes.create(sys, tenant, { name: "us", address: "b", tags: ["us"], engines: ["xray"] });
    await t.cp.nodes.setAssignmentPolicy(sys, tenant, { strategy: "by_tag", tags: ["eu"] });
    const [s1] = await created(1, tenant);
    expect((await assignmentsOf(s1!.subscriptionId)).map((r) => r.node_id)).toEqual([eu.id]);
    await t.cp.nodes.setAssignmentPolicy(sys, tenant, { strategy: "manual" });
    const [s2] = await created(1, tenant);
    expect(await assignmentsOf(s2!.subscriptionId)).toEqual([]);
    const members = await queryRows<{ n: number }>(
      t.cp.database.db,
      sql`SELECT count(*)::int AS n FROM node_members WHERE subscription_id = ${s2!.subscriptionId}`,
    );
    expect(members[0]!.n).toBe(0);
  });

  it("a node of the wrong engines does not carry a subscriber (engines intersect)", async () => {
    const tenant = (await t.cp.tenants.create(sys, { name: "Eng", slug: "eng" })).id;
    const wg = await t.cp.nodes.create(sys, tenant, { name: "wg", address: "a", engines: ["wireguard"] });
    const [sub] = await created(1, tenant); // xray only
    expect(await assignmentsOf(sub!.subscriptionId)).toEqual([]);
    // Even assigned by hand, the intersection is empty, so the node gets nothing to serve.
    await t.cp.nodes.assign(sys, wg.id, sub!.subscriptionId, "primary");
    const members = await queryRows<{ n: number }>(
      t.cp.database.db,
      sql`SELECT count(*)::int AS n FROM node_members WHERE node_id = ${wg.id}`,
    );
    expect(members[0]!.n).toBe(0);
  });
});

describe("assignment at creation", () => {
  it("a user created through the service has its nodes when the create returns, before any consumer ran", async () => {
    const tenant = (await t.cp.tenants.create(sys, { name: "Now", slug: "now" })).id;
    const a = await t.cp.nodes.create(sys, tenant, { name: "a", address: "a", engines: ["xray"] });
    const b = await t.cp.nodes.create(sys, tenant, { name: "b", address: "b", engines: ["xray"] });
    await t.cp.nodes.setAssignmentPolicy(sys, tenant, { strategy: "round_robin" });
    const one = await t.cp.users.create(sys, tenant, { username: "now-1" });
    const bulk = await t.cp.users.bulkCreate(sys, tenant, {
      users: [{ username: "now-2" }, { username: "now-3" }],
    });
    const subs = [one.subscription.id, ...bulk.items.map((i) => i.subscription_id)];
    const primaries = await Promise.all(
      subs.map(async (s) => (await assignmentsOf(s)).map((r) => r.node_id)),
    );
    // Round robin over two nodes: each subscription has exactly one, and both nodes are used.
    expect(primaries.map((p) => p.length)).toEqual([1, 1, 1]);
    expect(new Set(primaries.flat())).toEqual(new Set([a.id, b.id]));
  });
});

describe("reconciliation", () => {
  it("is idempotent: a second run writes nothing and bumps no revision", async () => {
    const node = await t.cp.nodes.create(sys, tenantId, { name: "idem", address: "a" });
    await created(3);
    await t.cp.nodes.rebalance(sys, tenantId);
    const rev = (await t.cp.desired.revision(node.id))!.revision;
    const again = await t.cp.database.db.transaction((tx) => reconcileMembers(tx, { nodeId: node.id }));
    expect(again.changes).toEqual([]);
    expect((await t.cp.desired.revision(node.id))!.revision).toBe(rev);
  });

  it("one revision per change, and a node-engine change reconciles the node", async () => {
    const node = await t.cp.nodes.create(sys, tenantId, { name: "eng2", address: "a" });
    const before = (await t.cp.desired.revision(node.id))!.revision;
    const members = async () =>
      (
        await queryRows<{ n: number }>(
          t.cp.database.db,
          sql`SELECT count(*)::int AS n FROM node_members WHERE node_id = ${node.id}`,
        )
      )[0]!.n;
    const count = await members();
    expect(count).toBeGreaterThan(0);
    expect(before).toBe(1n + BigInt(count));
    await t.cp.nodes.update(sys, node.id, { engines: ["wireguard"] }); // every seeded subscriber is xray-only
    expect(await members()).toBe(0);
    // one config revision + one removal per member
    expect((await t.cp.desired.revision(node.id))!.revision).toBe(before + 1n + BigInt(count));
  });
});

describe.skipIf(!process.env.DATABASE_URL)("outbox (txid, id) cursor", () => {
  it("an event with a lower id that commits after a higher one is still delivered", async () => {
    const db = t.cp.database.db;
    await drain();
    const [sub] = await seedSubscribers(db, t.cp.box, { tenantId, count: 1 });
    const id = sub!.subscriptionId;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // The slow transaction takes its outbox id first, then waits.
    const slow = db.transaction(async (tx) => {
      await appendOutbox(tx, {
        tenantId,
        topic: "user.created",
        subjectId: id,
        payload: { subscription_id: id },
      });
      await gate;
    });
    await new Promise((r) => setTimeout(r, 100));
    try {
      await db.transaction((tx) =>
        appendOutbox(tx, { tenantId, topic: "user.updated", subjectId: "sub_x", payload: {} }),
      );
      // Neither is final while an older transaction runs: an id-only cursor would take the later id
      // now and step over the slow one for good.
      expect(await drain()).toBe(0);
    } finally {
      release();
    }
    await slow;
    expect(await drainAtLeast(2)).toBe(2); // both delivered, the slow one not skipped
    expect((await assignmentsOf(id)).length).toBeGreaterThan(0);
  });
});
