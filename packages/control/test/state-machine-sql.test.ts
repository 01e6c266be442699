import { applyTransition, systemActor, type UpdateEvent } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import {
  contextOf,
  SUBSCRIPTION_EVENTS,
  SUBSCRIPTION_STATES,
  type SubscriptionState,
  transition,
} from "@vpnpanel/domain";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestControlPlane, type TestControlPlane } from "../../../test/support/control-plane";

// The compiled SQL state machine against the pure one: every event × every from-state × every
// combination of facts, applied by the real statement to real rows, must land where `transition()`
// says, with the domain events it lists — or change nothing where the domain refuses.

let t: TestControlPlane;
let tenantId: string;
beforeAll(async () => {
  t = await createTestControlPlane();
  tenantId = (await t.cp.tenants.create(systemActor(), { name: "SM", slug: "sm" })).id;
});
afterAll(async () => {
  await t?.close();
});

const QUOTA = 100n;
const EVENTS = SUBSCRIPTION_EVENTS.filter((e): e is UpdateEvent => e !== "delete");
const FACTS = [false, true].flatMap((started) =>
  [false, true].flatMap((timeExpired) =>
    [false, true].map((exhausted) => ({ started, timeExpired, exhausted })),
  ),
);

interface Case {
  id: string;
  event: UpdateEvent;
  from: SubscriptionState;
  facts: (typeof FACTS)[number];
}

/** Inserts one subscription per case, set-based, with the case's state and facts. */
async function seed(cases: Case[], now: Date) {
  const db = t.cp.database.db;
  const hour = 3_600_000;
  const arr = (f: (c: Case) => string | null) => sql`${sql.param(cases.map(f))}::text[]`;
  await db.execute(sql`INSERT INTO users (id, tenant_id, username)
    SELECT 'usr_' || x, ${tenantId}, 'u' || x FROM unnest(${arr((c) => c.id)}) AS x`);
  await db.execute(sql`INSERT INTO subscriptions (id, tenant_id, user_id, state, quota_bytes, engines, started_at,
      expires_at, token_hash, token_enc)
    SELECT 'sub_' || x.id, ${tenantId}, 'usr_' || x.id, x.state, ${QUOTA.toString()}::bigint, ARRAY['xray'],
           x.started::timestamptz, x.expires::timestamptz, 'h' || x.id, 'e'
    FROM unnest(${arr((c) => c.id)}, ${arr((c) => c.from)},
                ${arr((c) => (c.facts.started ? new Date(now.getTime() - 2 * hour).toISOString() : null))},
                ${arr((c) => new Date(now.getTime() + (c.facts.timeExpired ? -hour : hour)).toISOString())})
         AS x(id, state, started, expires)`);
  await db.execute(sql`INSERT INTO subscription_usage (subscription_id, used_bytes)
    SELECT 'sub_' || x.id, x.used::bigint FROM unnest(${arr((c) => c.id)}, ${arr((c) => (c.facts.exhausted ? "150" : "50"))}) AS x(id, used)`);
}

describe("the SQL state machine", () => {
  it("matches transition() for every event × state × facts, one statement per event over all rows", async () => {
    const now = t.clock.now();
    const cases: Case[] = [];
    let n = 0;
    for (const event of EVENTS)
      for (const from of SUBSCRIPTION_STATES)
        for (const facts of FACTS)
          cases.push({ id: `sm${(n++).toString().padStart(4, "0")}`, event, from, facts });
    await seed(cases, now);

    for (const event of EVENTS) {
      const ids = cases.filter((c) => c.event === event).map((c) => `sub_${c.id}`);
      await t.cp.database.db.transaction((tx) =>
        applyTransition(tx, {
          event,
          candidates: sql`SELECT unnest(${sql.param(ids)}::text[])`,
          now,
          actor: systemActor(),
        }),
      );
    }

    const rows = await queryRows<{ id: string; state: string; revision: unknown; topics: string[] | null }>(
      t.cp.database.db,
      sql`SELECT s.id, s.state, s.revision::text AS revision,
                 (SELECT array_agg(o.topic ORDER BY o.id) FROM outbox o WHERE o.subject_id = s.id) AS topics
          FROM subscriptions s WHERE s.tenant_id = ${tenantId}`,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    let changed = 0;
    for (const c of cases) {
      const row = byId.get(`sub_${c.id}`)!;
      const expected = transition(
        c.from,
        c.event,
        contextOf(
          {
            usedBytes: c.facts.exhausted ? 150n : 50n,
            quotaBytes: QUOTA,
            startedAt: c.facts.started ? new Date(0) : null,
            expiresAt: new Date(now.getTime() + (c.facts.timeExpired ? -1 : 1) * 3_600_000),
          },
          now,
        ),
      );
      const label = `${c.event} from ${c.from} ${JSON.stringify(c.facts)}`;
      if (expected.ok) {
        changed++;
        expect(row.state, label).toBe(expected.to);
        expect(row.topics, label).toEqual(expected.domainEvents);
        expect(Number(row.revision), label).toBe(2);
      } else {
        expect(row.state, label).toBe(c.from);
        expect(row.topics, label).toBeNull();
        expect(Number(row.revision), label).toBe(1);
      }
    }
    expect(changed).toBeGreaterThan(100);
    expect(cases).toHaveLength(EVENTS.length * 5 * 8);

    // Each changed row was audited once, by the same statement.
    const [audit] = await queryRows<{ n: unknown }>(
      t.cp.database.db,
      sql`SELECT count(*)::int AS n FROM audit_log WHERE tenant_id = ${tenantId} AND action LIKE 'subscription.%'`,
    );
    expect(Number(audit!.n)).toBe(changed);
  });

  it("two simultaneous transitions on one subscription leave a consistent state and an unbroken event chain", async () => {
    const db = t.cp.database.db;
    const actor = systemActor();
    const now = t.clock.now();
    type Op = (userId: string, subId: string) => Promise<unknown>;
    const ops: Record<string, Op> = {
      disable: (u) => t.cp.subscriptions.disable(actor, u),
      enable: (u) => t.cp.subscriptions.enable(actor, u),
      renew: (u) => t.cp.subscriptions.renew(actor, u, { extendSeconds: 86_400, resetUsage: false }),
      lowerQuota: (u) => t.cp.subscriptions.setQuota(actor, u, { quotaBytes: 50n }),
      raiseQuota: (u) => t.cp.subscriptions.setQuota(actor, u, { addBytes: 1000n }),
      reset: (u) => t.cp.subscriptions.resetUsage(actor, u),
      // What ingest does: add usage, then the guarded quota_exceeded transition, in one transaction.
      ingest: (_u, sub) =>
        db.transaction(async (tx) => {
          await tx.execute(
            sql`UPDATE subscription_usage SET used_bytes = used_bytes + 30 WHERE subscription_id = ${sub}`,
          );
          await applyTransition(tx, {
            event: "quota_exceeded",
            candidates: sql`SELECT ${sub}::text`,
            now,
            actor,
          });
        }),
    };
    const names = Object.keys(ops);
    const pairs = names.flatMap((a, i) => names.slice(i).map((b) => [a, b] as const));
    let n = 0;
    for (let round = 0; round < 2; round++) {
      for (const [a, b] of pairs) {
        const user = await t.cp.users.create(actor, tenantId, {
          username: `race-${n++}`,
          quotaBytes: 100n,
          durationSeconds: 30 * 86_400,
        });
        const sub = user.subscription.id;
        await db.execute(sql`UPDATE subscription_usage SET used_bytes = 80 WHERE subscription_id = ${sub}`);
        const results = await Promise.allSettled([ops[a]!(user.id, sub), ops[b]!(user.id, sub)]);
        for (const r of results) {
          // A refused event is a 409 from the domain, never a database error (deadlock, lost row).
          if (r.status === "rejected")
            expect((r.reason as { code?: string }).code, `${a} ‖ ${b}`).toBe("conflict");
        }
        const [row] = await queryRows<Record<string, unknown>>(
          db,
          sql`SELECT s.state, s.quota_bytes::text AS quota, s.expires_at, s.started_at, s.revision::text AS revision,
                     su.used_bytes::text AS used
              FROM subscriptions s JOIN subscription_usage su ON su.subscription_id = s.id WHERE s.id = ${sub}`,
        );
        const state = row!.state as SubscriptionState;
        const quota = BigInt(String(row!.quota));
        const used = BigInt(String(row!.used));
        const label = `${a} ‖ ${b}: ${state} used=${used} quota=${quota}`;
        // Apart from the sticky `disabled`, the state is what the facts say.
        if (state !== "disabled") expect(state, label).toBe(used >= quota ? "limited" : "active");
        // Every transition saw the state the previous one left (no lost update). A transition's events
        // share its revision; the first of them carries prev_state → state.
        const events = await queryRows<{ payload: { state: string; prev_state: string; revision: number } }>(
          db,
          sql`SELECT payload FROM outbox WHERE subject_id = ${sub} AND payload ? 'prev_state' ORDER BY id`,
        );
        const byRevision = new Map<number, { state: string; prev_state: string }>();
        for (const e of events)
          if (!byRevision.has(e.payload.revision)) byRevision.set(e.payload.revision, e.payload);
        let expectedPrev = "active";
        for (const [, e] of [...byRevision].sort(([x], [y]) => x - y)) {
          expect(e.prev_state, `${label} ${JSON.stringify(events)}`).toBe(expectedPrev);
          expectedPrev = e.state;
        }
        expect(expectedPrev, label).toBe(state);
        const transitions = byRevision.size;
        expect(Number(row!.revision), label).toBe(1 + transitions);
      }
    }
  });
});
