import { type Collector, startCollector } from "@vpnpanel/collector";
import { type ControlPlane, createControlPlane, systemActor } from "@vpnpanel/control";
import { createMemoryCoordinator } from "@vpnpanel/coord";
import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testConfig } from "../../../test/support/control-plane";
import { connectAgent, enroll, type NodeIdentity, type TestAgent } from "./support/agent";
import { collectorEnv } from "./support/harness";
import { seedSubscribers } from "./support/seed";
import { startThrowawayPg, type ThrowawayPg, throwawayPgAvailable } from "./support/throwaway-pg";

// PostgreSQL goes down hard (pg_ctl stop -m immediate: no checkpoint, crash recovery on start)
// while an agent streams usage. Batches that arrive meanwhile wait in the collector's queue (or,
// if the stream drops, in the agent's, and are re-sent); when the database is back every batch is
// stored exactly once and nothing is lost. A throwaway cluster is used, never the machine's own.

let pg: ThrowawayPg;
let cp: ControlPlane;
let collector: Collector;
let identity: NodeIdentity;
let subs: Array<{ subscriptionId: string }>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  pg = await startThrowawayPg();
  cp = await createControlPlane(
    testConfig({ ...collectorEnv, DATABASE_URL: pg.url, DATABASE_POOL_SIZE: "4" }),
    {
      coord: createMemoryCoordinator(),
    },
  );
  collector = await startCollector(cp, { port: 0, enrollPort: 0, pollIntervalMs: 100, tickMs: 500 });
  const tenant = await cp.tenants.create(systemActor(), { name: "Restart", slug: "restart" });
  subs = await seedSubscribers(cp.database.db, cp.box, { tenantId: tenant.id, count: 20, quotaBytes: null });
  const node = await cp.nodes.create(systemActor(), tenant.id, { name: "edge", address: "edge.example.com" });
  const { token, caPem } = await cp.enrollment.createToken(systemActor(), node.id);
  identity = await enroll(collector.enrollAddress, caPem, token);
}, 120_000);

afterAll(async () => {
  await collector?.stop(2000).catch(() => {});
  await cp?.close().catch(() => {});
  pg?.destroy();
});

describe.skipIf(!throwawayPgAvailable)("PostgreSQL restarted mid-stream", () => {
  it("loses nothing and counts nothing twice", async () => {
    const total = 60;
    const batches = new Map<
      bigint,
      { samples: Array<{ userId: string; uplinkBytes: bigint; downlinkBytes: bigint }>; at: Date }
    >();
    for (let i = 1; i <= total; i++) {
      batches.set(BigInt(i), {
        at: new Date(Date.now() - (total - i) * 1000),
        samples: subs.map((s, j) => ({
          userId: s.subscriptionId,
          uplinkBytes: BigInt(i),
          downlinkBytes: BigInt(j + 1),
        })),
      });
    }
    const acked = new Set<bigint>();
    const connect = async () => {
      const a = connectAgent(collector.address, identity);
      a.hello(0n);
      await a.waitFor((m) => m.body?.$case === "policy", { timeoutMs: 60_000 });
      return a;
    };
    let agent: TestAgent = await connect();
    const send = (seq: bigint) => {
      const b = batches.get(seq)!;
      agent.usage(seq, b.samples, b.at);
    };

    const t0 = Date.now();
    let restart: Promise<void> | null = null;
    for (let i = 1; i <= total; i++) {
      send(BigInt(i));
      if (i === 20) {
        restart = (async () => {
          pg.stop("immediate");
          await sleep(1500);
          pg.start();
        })();
      }
      await sleep(40);
    }
    await restart;

    const deadline = Date.now() + 90_000;
    let reconnects = 0;
    while (acked.size < total && Date.now() < deadline) {
      for (const a of agent.of("usageAck")) acked.add(a.seq);
      const ended = await Promise.race([agent.done.then(() => true), sleep(300).then(() => false)]);
      if (ended && acked.size < total) {
        // What a real agent does: reconnect and re-send every unacked batch from its queue.
        reconnects++;
        agent = await connect();
        for (const seq of batches.keys()) if (!acked.has(seq)) send(seq);
      }
    }
    for (const a of agent.of("usageAck")) acked.add(a.seq);
    expect(acked.size).toBe(total);
    agent.close();

    const perSeq = (i: number) =>
      BigInt(i) * BigInt(subs.length) + BigInt((subs.length * (subs.length + 1)) / 2);
    let expected = 0n;
    for (let i = 1; i <= total; i++) expected += perSeq(i);
    const [sum] = await queryRows<{ used: string }>(
      cp.database.db,
      sql`SELECT sum(used_bytes)::text AS used FROM subscription_usage`,
    );
    expect(BigInt(sum!.used)).toBe(expected);
    const [stored] = await queryRows<{ n: number }>(
      cp.database.db,
      sql`SELECT count(*)::int AS n FROM usage_batches WHERE node_id = ${identity.nodeId}`,
    );
    expect(stored!.n).toBe(total);
    // The outage really hit ingest: transactions failed and were retried until the database was back.
    expect((await collector.metrics.ingestRetries.get()).values[0]?.value ?? 0).toBeGreaterThan(0);
    process.stdout.write(`pg restart: ${reconnects} agent reconnect(s), ${Date.now() - t0} ms\n`);
  }, 180_000);
});
