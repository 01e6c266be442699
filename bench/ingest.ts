// `npm run bench -- ingest [--subscribers 100000] [--nodes 20] [--seconds 30] [--window 4]
//                          [--reconnect-nodes 1000] [--keep]`
//
// Usage ingestion end to end on local PostgreSQL (DATABASE_URL, default the local cluster; a
// scratch database `vpnpanel_bench_ingest` is created and dropped):
//   1. ceiling: the same sample rows inserted raw (unnest batches of 5,000, autocommit) into a
//      table shaped like traffic_events (same partitioning and indexes), and into an unindexed one;
//   2. throughput: a real collector process (`vpnpanel serve --roles collector`) and a load generator
//      process whose simulated nodes stream usage for every subscriber over mTLS, `window` batches in
//      flight per node; sustained acked samples/s (acks are sent after commit);
//   3. enforcement: the same load, with 1,000 subscribers a batch away from their quota; delay from
//      sending the crossing batch to the removal command arriving (loopback, so ≈ leaving the collector);
//   4. reconnect: 1,000 simulated nodes in session, the collector is stopped (SIGTERM, draining) and a
//      new one started on the same port; time until every node is back in session.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createControlPlane, loadControlConfig, systemActor } from "@vpnpanel/control";
import { createMemoryCoordinator } from "@vpnpanel/coord";
import { queryRows } from "@vpnpanel/db";
import { createCsr, exportPrivateKeyPem, generateKeyPair } from "@vpnpanel/pki";
import { sql } from "drizzle-orm";
import pg from "pg";
import { seedSubscribers } from "../apps/collector/test/support/seed";
import { option } from "./args";

const root = fileURLToPath(new URL("..", import.meta.url));
const DB_NAME = "vpnpanel_bench_ingest";

function arg(args: string[], name: string, fallback: number): number {
  const value = option(args, name);
  return value === undefined ? fallback : Number(value);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

const withDb = (url: string, name: string) => {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
};

const log = (line: string) => process.stdout.write(`${line}\n`);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function startCollector(env: Record<string, string>): Promise<{ child: ChildProcess; startedMs: number }> {
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    // The api role serves /metrics (the collector's enforcement-delay histogram).
    [
      ...(process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
      join(root, "apps/cli/bin/vpnpanel.mjs"),
      "serve",
      "--roles",
      "api,collector",
    ],
    {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let err = "";
  child.stderr!.on("data", (d) => {
    err += String(d);
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (process.env.BENCH_DEBUG && /stopped|shutting|drain|listening|DBG/.test(line))
        log(`[collector ${Date.now()}] ${line.slice(0, 200)}`);
      if (line.includes("collector listening")) resolve({ child, startedMs: Date.now() - t0 });
    });
    child.on("exit", (code, signal) => {
      if (code !== 0 && signal !== "SIGTERM")
        process.stderr.write(`collector exited (${code ?? signal}):\n${err}\n`);
      reject(new Error(`collector exited (${code ?? signal})`));
    });
  });
}

function loadgen(args: string[]): {
  child: ChildProcess;
  result: Promise<Record<string, number>>;
  lines: AsyncIterable<string>;
} {
  const profile = process.env.BENCH_PROFILE
    ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : [];
  const child = spawn(
    process.execPath,
    [...profile, "--import", "tsx", join(root, "bench/ingest-loadgen.ts"), ...args],
    {
      cwd: root,
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const rl = createInterface({ input: child.stdout! });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  rl.on("line", (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const result = new Promise<Record<string, number>>((resolve, reject) => {
    child.on("exit", (code) => {
      const last = lines.filter((l) => l.startsWith("{")).at(-1);
      if (code === 0 && last) resolve(JSON.parse(last));
      else reject(new Error(`load generator exited with ${code}`));
    });
  });
  async function* iterate() {
    let i = 0;
    for (;;) {
      while (i < lines.length) yield lines[i++]!;
      await new Promise<void>((r) => waiters.push(r));
    }
  }
  return { child, result, lines: iterate() };
}

const ms = (seconds: number) => (Number.isFinite(seconds) ? `${Math.round(seconds * 1000)} ms` : "n/a");

type Buckets = Array<{ le: number; count: number }>;

/** One of the collector's histograms, cumulative buckets from /metrics. */
async function histogram(apiPort: number, name: string): Promise<Buckets> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const out: Buckets = [];
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, "gm"))) {
    out.push({ le: m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), count: Number(m[2]) });
  }
  return out;
}

const minus = (after: Buckets, before: Buckets): Buckets =>
  after.map((b, i) => ({ le: b.le, count: b.count - (before[i]?.count ?? 0) }));

/** Waits until the collector's ingest queue is empty (the previous phase's backlog committed). */
async function queueDrained(apiPort: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
    const m = /^vpnpanel_ingest_queue_batches (\d+)/m.exec(text);
    if (m && Number(m[1]) === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** histogram_quantile: linear interpolation inside the bucket holding the q-th observation. */
function quantile(buckets: Array<{ le: number; count: number }>, q: number): number {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / Math.max(1, b.count - prevCount);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

async function ceiling(url: string, subscriptionIds: string[], rounds: number) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const today = new Date().toISOString().slice(0, 10);
  await client.query(`DROP TABLE IF EXISTS bench_raw, bench_raw_plain`);
  await client.query(
    `CREATE TABLE bench_raw (LIKE traffic_events INCLUDING DEFAULTS) PARTITION BY RANGE (ts)`,
  );
  await client.query(`CREATE INDEX ON bench_raw (subscription_id, ts)`);
  await client.query(`CREATE INDEX ON bench_raw USING brin (ts)`);
  await client.query(
    `CREATE TABLE bench_raw_p PARTITION OF bench_raw FOR VALUES FROM ('${today}') TO ('${today}'::date + 2)`,
  );
  await client.query(`CREATE UNLOGGED TABLE bench_raw_plain (LIKE traffic_events INCLUDING DEFAULTS)`);
  await client.query(`ALTER TABLE bench_raw_plain SET LOGGED`);
  const results: Record<string, number> = {};
  for (const table of ["bench_raw", "bench_raw_plain"]) {
    let rows = 0;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < subscriptionIds.length; i += 5000) {
        const chunk = subscriptionIds.slice(i, i + 5000);
        await client.query(
          `INSERT INTO ${table} (ts, node_id, seq, subscription_id, tenant_id, engine, up, down)
           SELECT now(), 'node_bench', $1, s, 'tnt_bench', 1, u, d
           FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS v(s, u, d)`,
          [
            r * 1000 + i / 5000,
            chunk,
            chunk.map(() => 1 + Math.floor(Math.random() * 1000)),
            chunk.map(() => 1 + Math.floor(Math.random() * 10_000)),
          ],
        );
        rows += chunk.length;
      }
    }
    results[table] = rows / ((performance.now() - t0) / 1000);
  }
  await client.query(`DROP TABLE bench_raw, bench_raw_plain`);
  await client.end();
  return results;
}

export async function main(args: string[]) {
  const subscribers = arg(args, "subscribers", 100_000);
  const nodeCount = arg(args, "nodes", 20);
  const seconds = arg(args, "seconds", 30);
  const window = arg(args, "window", 4);
  const reconnectNodes = arg(args, "reconnect-nodes", 1000);
  const base = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const admin = new pg.Client({ connectionString: withDb(base, "postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB_NAME}`);
  const url = withDb(base, DB_NAME);
  const work = mkdtempSync(join(tmpdir(), "vpnpanel-bench-"));
  const [port, enrollPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const env: Record<string, string> = {
    DATABASE_URL: url,
    SECRET_KEY: Buffer.alloc(32, 9).toString("base64"),
    LOG_LEVEL: "info",
    COLLECTOR_HOST: "127.0.0.1",
    COLLECTOR_PUBLIC_HOST: "127.0.0.1",
    COLLECTOR_PORT: String(port),
    HOST: "127.0.0.1",
    PORT: String(apiPort),
    ENROLL_PORT: String(enrollPort),
    SHUTDOWN_GRACE_SECONDS: "10",
  };
  const cp = await createControlPlane(loadControlConfig({ ...env, LOG_LEVEL: "warn" }), {
    coord: createMemoryCoordinator(),
  });
  const db = cp.database.db;
  let collector: ChildProcess | null = null;
  try {
    log(
      `# ingest benchmark: ${fmt(subscribers)} subscribers on ${nodeCount} nodes, ${seconds} s, window ${window}`,
    );
    let t0 = performance.now();
    const tenant = await cp.tenants.create(systemActor(), { name: "Bench", slug: "bench" });
    await cp.nodes.setAssignmentPolicy(systemActor(), tenant.id, { strategy: "round_robin" });
    const subs = await seedSubscribers(db, cp.box, {
      tenantId: tenant.id,
      count: subscribers,
      quotaBytes: 2n ** 50n,
      engines: ["xray"],
      chunk: 5000,
    });
    log(`seeded ${fmt(subs.length)} subscribers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    async function enrolledNodes(tenantId: string, count: number, prefix: string) {
      const out: Array<{ nodeId: string; certPem: string; keyPem: string; caPem: string }> = [];
      for (let i = 0; i < count; i++) {
        const node = await cp.nodes.create(systemActor(), tenantId, {
          name: `${prefix}-${i}`,
          address: `${prefix}-${i}.example.com`,
          engines: ["xray"],
        });
        const { token } = await cp.enrollment.createToken(systemActor(), node.id);
        const keyPair = await generateKeyPair();
        const issued = await cp.enrollment.enroll({
          token,
          csrPem: await createCsr({ keyPair }),
          agentVersion: "bench",
          hostname: node.name,
        });
        out.push({
          nodeId: node.id,
          certPem: issued.certificatePem,
          keyPem: await exportPrivateKeyPem(keyPair.privateKey),
          caPem: issued.caChainPem,
        });
      }
      return out;
    }

    t0 = performance.now();
    const nodes = await enrolledNodes(tenant.id, nodeCount, "edge");
    await cp.nodes.rebalance(systemActor(), tenant.id);
    const assigned = await queryRows<{ node_id: string; subscription_id: string }>(
      db,
      sql`SELECT node_id, subscription_id FROM node_assignments ORDER BY node_id, subscription_id`,
    );
    const byNode = new Map<string, string[]>();
    for (const a of assigned) {
      const list = byNode.get(a.node_id);
      if (list) list.push(a.subscription_id);
      else byNode.set(a.node_id, [a.subscription_id]);
    }
    const identities = nodes.map((n) => ({ ...n, subscriptions: byNode.get(n.nodeId) ?? [] }));
    const idFile = join(work, "nodes.json");
    writeFileSync(idFile, JSON.stringify(identities));
    log(
      `enrolled ${nodeCount} nodes and assigned subscribers in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    // Planner statistics, as autovacuum would have gathered them on a live database (it may be off
    // on a CI cluster).
    await db.execute(sql`ANALYZE`);

    // 1. the ceiling
    const raw = await ceiling(
      url,
      subs.map((s) => s.subscriptionId),
      3,
    );
    log(
      `ceiling (same rows, unnest batches of 5,000, autocommit): ${fmt(raw.bench_raw!)} rows/s into a table shaped like traffic_events (partitioned, same indexes); ${fmt(raw.bench_raw_plain!)} rows/s unindexed`,
    );

    const limitedAlready = new Set<string>();
    // 2. throughput
    const started = await startCollector(env);
    collector = started.child;
    log(`collector started in ${started.startedMs} ms`);
    const stream = loadgen([
      idFile,
      `127.0.0.1:${port}`,
      "stream",
      JSON.stringify({ seconds, window, seqStart: 1 }),
    ]);
    const tp = await stream.result;
    log(
      `throughput: ${fmt(tp.samplesPerSecond!)} samples/s sustained (${fmt(tp.ackedSamples!)} samples acked in ${tp.seconds!.toFixed(1)} s, ${fmt(tp.ackedBatches!)} batches)`,
    );
    // Every counter row changed: refresh the statistics as autovacuum would (stale ones, taken while
    // last_used_at was NULL everywhere, send the collector's per-node lease refresh to a plan that
    // probes all 100,000 counters per node).
    await db.execute(sql`ANALYZE`);

    // 3. enforcement: 1,000 subscribers a batch away from their quota, at a paced load of about a third of
    //    the measured capacity (every node sends one batch per interval, staggered), then saturated.
    let seqStart = 10_000_000;
    for (const [phase, label, pace] of [
      [0, "paced", Math.max(500, Math.round((subscribers / (tp.samplesPerSecond! / 3)) * 1000))],
      [1, "saturated", 0],
    ] as const) {
      // A different 1,000 subscribers each phase, the same number on every node.
      const perNode = Math.ceil(1000 / identities.length);
      const crossing = identities
        .flatMap((n) => n.subscriptions.slice(phase * perNode, (phase + 1) * perNode))
        .slice(0, 1000)
        .map((subscriptionId) => ({ subscriptionId }));
      for (const c of crossing) limitedAlready.add(c.subscriptionId);
      await db.execute(sql`UPDATE subscriptions s SET quota_bytes = u.used_bytes + 500000
        FROM subscription_usage u WHERE u.subscription_id = s.id
          AND s.id = ANY(${sql.param(crossing.map((c) => c.subscriptionId))}::text[])`);
      const crossFile = join(work, `crossing-${label}.json`);
      writeFileSync(crossFile, JSON.stringify(crossing.map((c) => c.subscriptionId)));
      await queueDrained(apiPort);
      const before = await histogram(apiPort, "vpnpanel_enforcement_delay_seconds");
      const txBefore = await histogram(apiPort, "vpnpanel_ingest_transaction_seconds");
      const enf = await loadgen([
        idFile,
        `127.0.0.1:${port}`,
        "stream",
        JSON.stringify({
          seconds: label === "paced" ? Math.max(20, (3 * pace) / 1000) : 15,
          window,
          crossing: crossFile,
          seqStart,
          intervalMs: pace,
          crossAt: 1,
        }),
      ]).result;
      seqStart += 1_000_000;
      const delta = minus(await histogram(apiPort, "vpnpanel_enforcement_delay_seconds"), before);
      const tx = minus(await histogram(apiPort, "vpnpanel_ingest_transaction_seconds"), txBefore);
      log(
        `enforcement, ${label} load (${fmt(enf.samplesPerSecond!)} samples/s${pace ? `, one batch per node every ${(pace / 1000).toFixed(1)} s` : `, window ${window}`}): ${enf.removals} removals; crossing batch arrival → removal sent (collector): p50 ${ms(quantile(delta, 0.5))}, p99 ${ms(quantile(delta, 0.99))}; batch sent → removal received (load generator): p50 ${enf.removalP50Ms} ms, p99 ${enf.removalP99Ms} ms; ingest transactions p50 ${ms(quantile(tx, 0.5))}, p99 ${ms(quantile(tx, 0.99))}`,
      );
    }
    const limited = await queryRows<{ n: number }>(
      db,
      sql`SELECT count(*)::int AS n FROM subscriptions WHERE state = 'limited'`,
    );
    log(`subscriptions limited: ${limited[0]!.n} (expected ${limitedAlready.size})`);

    // 4. reconnects
    if (reconnectNodes > 0) {
      t0 = performance.now();
      const tenant2 = await cp.tenants.create(systemActor(), { name: "Fleet", slug: "fleet" });
      const fleet = await enrolledNodes(tenant2.id, reconnectNodes, "fleet");
      const fleetFile = join(work, "fleet.json");
      writeFileSync(fleetFile, JSON.stringify(fleet.map((f) => ({ ...f, subscriptions: [] }))));
      log(`enrolled ${reconnectNodes} more nodes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const rec = loadgen([fleetFile, `127.0.0.1:${port}`, "reconnect", "{}"]);
      for await (const line of rec.lines) if (line.startsWith("ready")) break;
      log(`${reconnectNodes} nodes in session; restarting the collector`);
      const stoppedAt = Date.now();
      const exited = new Promise((r) => collector!.once("exit", r)).then(() => {
        if (process.env.BENCH_DEBUG)
          log(`[bench ${Date.now()}] old collector exited after ${Date.now() - stoppedAt} ms`);
      });
      collector.kill("SIGTERM");
      rec.child.stdin!.write(`${stoppedAt}\n`);
      await exited;
      const restarted = await startCollector(env);
      collector = restarted.child;
      const rr = await rec.result;
      log(
        `reconnect: all ${rr.nodes} nodes back in session ${rr.allBackSecondsFromStop!.toFixed(1)} s after the stop (old collector drained and exited in ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s incl. restart; new one listening after ${(restarted.startedMs / 1000).toFixed(1)} s)`,
      );
    }
  } finally {
    collector?.kill("SIGTERM");
    await cp.close();
    if (!args.includes("--keep")) await admin.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}
