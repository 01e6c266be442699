import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ControlPlane, createControlPlane, systemActor } from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { createCsr, exportPrivateKeyPem, generateKeyPair } from "@vpnpanel/pki";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testConfig } from "../../../test/support/control-plane";
import { createTestDatabase, type TestDatabase } from "../../../test/support/database";
import { connectAgent, type NodeIdentity, outcome } from "./support/agent";
import { type ChildCollector, spawnCollector } from "./support/child";
import { collectorEnv } from "./support/harness";
import { seedSubscribers } from "./support/seed";

// The collector process is killed (SIGKILL) between the commit of a usage batch and its ack. The
// agent, which never got the ack, resends the batch to a fresh collector: it is acked as a
// duplicate and counted once. PGlite mode runs the collector on an on-disk PGlite directory that
// the killed process leaves behind; PostgreSQL mode on a fresh test database.

let env: Record<string, string>;
let testDb: TestDatabase | null = null;
let dataDir: string | null = null;
let identity: NodeIdentity;
let subscriptionId: string;
const children: ChildCollector[] = [];

async function withControlPlane<T>(fn: (cp: ControlPlane) => Promise<T>): Promise<T> {
  const cp = await createControlPlane(testConfig(env), { skipMigrations: Boolean(testDb) });
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}

beforeAll(async () => {
  if (process.env.DATABASE_URL) {
    testDb = await createTestDatabase();
    await testDb.database.close();
    env = { ...collectorEnv, DATABASE_URL: testDb.url! };
  } else {
    dataDir = mkdtempSync(join(tmpdir(), "vpnpanel-crash-"));
    env = { ...collectorEnv, DATA_DIR: dataDir };
  }
  if (process.env.REDIS_URL) env.REDIS_URL = process.env.REDIS_URL;
  env.SECRET_KEY = Buffer.alloc(32, 7).toString("base64");
  await withControlPlane(async (cp) => {
    const tenant = await cp.tenants.create(systemActor(), { name: "Crash", slug: "crash" });
    const [sub] = await seedSubscribers(cp.database.db, cp.box, {
      tenantId: tenant.id,
      count: 1,
      quotaBytes: null,
    });
    subscriptionId = sub!.subscriptionId;
    const node = await cp.nodes.create(systemActor(), tenant.id, {
      name: "edge",
      address: "edge.example.com",
    });
    const { token } = await cp.enrollment.createToken(systemActor(), node.id);
    const keyPair = await generateKeyPair();
    const issued = await cp.enrollment.enroll({
      token,
      csrPem: await createCsr({ keyPair }),
      agentVersion: "t",
      hostname: "edge",
    });
    identity = {
      nodeId: node.id,
      certPem: issued.certificatePem,
      keyPem: await exportPrivateKeyPem(keyPair.privateKey),
      caPem: issued.caChainPem,
    };
  });
});

afterAll(async () => {
  for (const c of children)
    if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill("SIGKILL");
  await testDb?.drop().catch(() => {});
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("collector killed between commit and ack", () => {
  it("the resend after the crash is deduplicated: every batch counts exactly once", async () => {
    const first = await spawnCollector({ ...env, CRASH_AFTER_COMMIT_SEQ: "2" });
    children.push(first);
    const agent = connectAgent(first.address, identity);
    agent.hello(0n);
    await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last, { timeoutMs: 30_000 });
    agent.usage(1n, [{ userId: subscriptionId, uplinkBytes: 1n, downlinkBytes: 10n }]);
    await agent.waitFor((m) => m.body?.$case === "usageAck" && m.body.value.seq === 1n);
    const sampledAt = new Date(Date.now() - 1000);
    agent.usage(2n, [{ userId: subscriptionId, uplinkBytes: 100n, downlinkBytes: 1000n }], sampledAt);
    expect((await first.exited).signal).toBe("SIGKILL");
    expect(await outcome(agent)).not.toBe("ok");
    expect(agent.of("usageAck").map((a) => a.seq)).toEqual([1n]);

    const second = await spawnCollector(env);
    children.push(second);
    const again = connectAgent(second.address, identity);
    again.hello(0n);
    await again.waitFor((m) => m.body?.$case === "policy", { timeoutMs: 30_000 });
    // The agent re-sends the unacked batch byte for byte, then carries on.
    again.usage(2n, [{ userId: subscriptionId, uplinkBytes: 100n, downlinkBytes: 1000n }], sampledAt);
    again.usage(3n, [{ userId: subscriptionId, uplinkBytes: 10_000n, downlinkBytes: 0n }]);
    await again.waitFor(() => again.of("usageAck").length >= 2);
    // Two ingest transactions may run at once, so the acks may come in either order.
    expect([...again.of("usageAck")].sort((a, b) => Number(a.seq - b.seq))).toEqual([
      { seq: 2n, duplicate: true },
      { seq: 3n, duplicate: false },
    ]);
    again.close();
    await outcome(again);
    second.process.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);

    await withControlPlane(async (cp) => {
      const [usage] = await queryRows<{ used: string }>(
        cp.database.db,
        sql`SELECT used_bytes::text AS used FROM subscription_usage WHERE subscription_id = ${subscriptionId}`,
      );
      expect(usage!.used).toBe(String(11 + 1100 + 10_000));
      const batches = await queryRows<{ seq: string }>(
        cp.database.db,
        sql`SELECT seq::text AS seq FROM usage_batches WHERE node_id = ${identity.nodeId} ORDER BY seq`,
      );
      expect(batches.map((b) => b.seq)).toEqual(["1", "2", "3"]);
      const raw = await queryRows<{ n: number }>(
        cp.database.db,
        sql`SELECT count(*)::int AS n FROM traffic_events WHERE node_id = ${identity.nodeId}`,
      );
      expect(raw[0]!.n).toBe(3);
    });
  }, 120_000);
});
