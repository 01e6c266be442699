import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApi } from "@vpnpanel/api";
import {
  createControlPlane,
  loadControlConfig,
  systemActor,
  type TransitionRow,
  userPageQuery,
} from "@vpnpanel/control";
import { queryRows } from "@vpnpanel/db";
import { createSchedulerRole } from "@vpnpanel/scheduler";
import { sql } from "drizzle-orm";
import pg from "pg";
import { option } from "./args";

// `npm run bench -- lifecycle [--users N] [--total N] [--batch N] [--database URL] [--keep]`
//
// The subscriber lifecycle at scale, against local PostgreSQL, in a database of its own (dropped at
// the end unless --keep):
// 1. bulk-create `--users` (100,000) subscribers through the real API (POST /users/bulk, `--batch`
//    per request: validation, credential generation, address allocation, set-based inserts);
// 2. grow the tenant to `--total` (1,000,000) subscriptions with set-based SQL (generate_series);
// 3. give 1% of them the same expires_at a few seconds ahead, run the real scheduler (real clock,
//    all lifecycle jobs) and measure, per subscription, commit time of its state change − expires_at;
// 4. time user-list pages (GET /users through the app, keyset pagination) at that size, and print
//    EXPLAIN ANALYZE of the statements behind them.

function parseArgs(args: string[]) {
  const get = (name: string) => option(args, name);
  return {
    users: Number(get("users") ?? 100_000),
    total: Number(get("total") ?? 1_000_000),
    batch: Number(get("batch") ?? 5000),
    databaseUrl: get("database") ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    keep: args.includes("--keep"),
  };
}

const withDb = (url: string, name: string) => {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
};

async function admin(url: string, statement: string) {
  const c = new pg.Client({ connectionString: withDb(url, "postgres") });
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const ms = (n: number) => `${n.toFixed(1)} ms`;
function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s.at(-1) ?? NaN };
}
const say = (line: string) => process.stdout.write(`${line}\n`);

export async function main(args: string[]) {
  const o = parseArgs(args);
  const dbName = `vpb_lifecycle_${randomBytes(4).toString("hex")}`;
  const url = withDb(o.databaseUrl, dbName);
  const dataDir = mkdtempSync(join(tmpdir(), "vpb-lifecycle-"));
  const pgVersion = await (async () => {
    const c = new pg.Client({ connectionString: withDb(o.databaseUrl, "postgres") });
    await c.connect();
    const r = await c.query("SHOW server_version");
    await c.end();
    return String(r.rows[0].server_version);
  })();
  say(`lifecycle benchmark: PostgreSQL ${pgVersion}, Node ${process.version}, database ${dbName}`);
  await admin(o.databaseUrl, `CREATE DATABASE ${dbName}`);
  const config = loadControlConfig({
    DATABASE_URL: url,
    SECRET_KEY: Buffer.alloc(32, 5).toString("base64"),
    LOG_LEVEL: "warn",
    DATA_DIR: dataDir,
    ARGON2_MEMORY_KIB: "4096",
    ARGON2_TIME_COST: "1",
    BULK_MAX_USERS: String(Math.max(1000, o.batch)),
  });
  const cp = await createControlPlane(config);
  let onExpired: (rows: TransitionRow[], committedAt: Date) => void = () => {};
  const scheduler = createSchedulerRole(cp, {
    lifecycle: { onExpired: (rows, committedAt) => onExpired(rows, committedAt) },
  });
  try {
    const { app } = await buildApi(cp);
    const db = cp.database.db;
    const sys = systemActor();
    const tenant = await cp.tenants.create(sys, { name: "Bench", slug: "bench" });
    await cp.admins.create(sys, {
      email: "bench@bench.local",
      password: "bench password 123",
      tenantId: tenant.id,
      role: "admin",
    });
    const login = await app.inject({
      method: "POST",
      url: "/auth/login",
      payload: { email: "bench@bench.local", password: "bench password 123" },
    });
    const auth = { authorization: `Bearer ${login.json().access_token}` };
    const plan = await cp.plans.create(sys, tenant.id, {
      name: "Monthly 10G",
      quotaBytes: 10n * 2n ** 30n,
      durationSeconds: 30 * 86_400,
      resetStrategy: "month",
    });

    // 1. Bulk creation through the API.
    say(
      `\n[1] bulk-create ${o.users.toLocaleString("en")} users via POST /users/bulk (${o.batch} per request)`,
    );
    const requestMs: number[] = [];
    const t0 = performance.now();
    for (let done = 0; done < o.users; done += o.batch) {
      const n = Math.min(o.batch, o.users - done);
      const users = Array.from({ length: n }, (_, i) => ({ username: `bulk-${done + i}` }));
      const started = performance.now();
      const r = await app.inject({
        method: "POST",
        url: "/users/bulk",
        headers: auth,
        payload: { plan_id: plan.id, users },
      });
      requestMs.push(performance.now() - started);
      if (r.statusCode !== 201)
        throw new Error(`bulk create failed: ${r.statusCode} ${r.body.slice(0, 300)}`);
    }
    const bulkSeconds = (performance.now() - t0) / 1000;
    const req = summary(requestMs);
    say(
      `    ${o.users.toLocaleString("en")} users in ${bulkSeconds.toFixed(1)} s = ${Math.round(o.users / bulkSeconds).toLocaleString("en")} users/s; per request p50 ${ms(req.p50)}, max ${ms(req.max)}`,
    );

    // 2. Grow to the target size with set-based SQL.
    const extra = o.total - o.users;
    say(`\n[2] seeding ${extra.toLocaleString("en")} more subscriptions with set-based SQL`);
    const t1 = performance.now();
    const chunk = 100_000;
    const id = (prefix: string) => sql.raw(`'${prefix}_' || lpad(to_hex(i), 26, '0')`);
    for (let from = 1; from <= extra; from += chunk) {
      const to = Math.min(extra, from + chunk - 1);
      await db.transaction(async (tx) => {
        await tx.execute(sql`INSERT INTO users (id, tenant_id, username, note)
          SELECT ${id("usr")}, ${tenant.id}, 'seed-' || i, CASE WHEN i % 50 = 0 THEN 'vip reseller ' || i END
          FROM generate_series(${from}::int, ${to}::int) i`);
        await tx.execute(sql`INSERT INTO subscriptions (id, tenant_id, user_id, plan_id, state, quota_bytes, engines,
            reset_strategy, duration_seconds, started_at, expires_at, next_reset_at, token_hash, token_enc)
          SELECT ${id("sub")}, ${tenant.id}, ${id("usr")}, ${plan.id},
                 CASE WHEN i % 97 = 0 THEN 'limited' WHEN i % 89 = 0 THEN 'disabled' ELSE 'active' END,
                 10737418240, ARRAY['xray', 'wireguard'], 'month', 2592000, now() - interval '1 day',
                 now() + interval '20 days' + (i % 10000) * interval '1 minute',
                 now() + interval '29 days' + (i % 1000) * interval '1 minute', md5('seed' || i), 'seed'
          FROM generate_series(${from}::int, ${to}::int) i`);
        await tx.execute(sql`INSERT INTO subscription_usage (subscription_id, used_bytes, upload_bytes, download_bytes)
          SELECT ${id("sub")}, (i % 1000)::bigint * 1048576, (i % 1000)::bigint * 262144, (i % 1000)::bigint * 786432
          FROM generate_series(${from}::int, ${to}::int) i`);
      });
      process.stdout.write(`    ${to.toLocaleString("en")}\r`);
    }
    for (const table of ["users", "subscriptions", "subscription_usage"])
      await cp.database.exec(`VACUUM ANALYZE ${table}`);
    const [count] = await queryRows<{ n: string }>(db, sql`SELECT count(*)::text AS n FROM subscriptions`);
    say(
      `    ${Number(count!.n).toLocaleString("en")} subscriptions in the tenant (seeded in ${((performance.now() - t1) / 1000).toFixed(1)} s)`,
    );

    // The 100k creations left 100k user.created events: let the webhook consumer catch up first, as a
    // running system would have.
    while ((await cp.webhookDelivery.fanOut()).events > 0) {}

    // 3. Expire 1% at once with the scheduler running.
    const due = Math.round(o.total / 100);
    const lead = 4000;
    const expiresAt = new Date(Date.now() + lead);
    await db.execute(sql`UPDATE subscriptions s SET expires_at = ${expiresAt.toISOString()}::timestamptz, state = 'active'
      FROM (SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM subscriptions) x
            WHERE rn % 100 = 0) pick
      WHERE s.id = pick.id`);
    await cp.database.exec("ANALYZE subscriptions");
    say(
      `\n[3] ${due.toLocaleString("en")} subscriptions (1%) expire at the same instant; scheduler running (expiry job every 1 s)`,
    );
    const delays: number[] = [];
    let batches = 0;
    const finished = new Promise<void>((resolve) => {
      onExpired = (rows, committedAt) => {
        batches++;
        for (const _ of rows) delays.push(committedAt.getTime() - expiresAt.getTime());
        if (delays.length >= due) resolve();
      };
    });
    scheduler.start();
    await Promise.race([finished, new Promise((r) => setTimeout(r, lead + 60_000))]);
    await scheduler.stop();
    const d = summary(delays);
    say(
      `    ${d.n.toLocaleString("en")} expired in ${batches} batches; delay expires_at → committed state change: p50 ${ms(d.p50)}, p99 ${ms(d.p99)}, max ${ms(d.max)}`,
    );
    const [check] = await queryRows<{ n: string }>(
      db,
      sql`SELECT count(*)::text AS n FROM subscriptions WHERE expires_at = ${expiresAt.toISOString()}::timestamptz AND state = 'expired'`,
    );
    say(
      `    check: ${Number(check!.n).toLocaleString("en")} of ${due.toLocaleString("en")} are expired in the database`,
    );

    // 4. User list pages at this size.
    say(
      `\n[4] GET /users pages (limit 50) at ${Number(count!.n).toLocaleString("en")} users, through the app (app.inject)`,
    );
    const sample = await queryRows<{ id: string }>(
      db,
      sql`SELECT id FROM users TABLESAMPLE SYSTEM (1) WHERE tenant_id = ${tenant.id} LIMIT 2000`,
    );
    const cursorOf = (userId: string) => Buffer.from(`users:${userId}`).toString("base64url");
    const scenarios: Array<{ name: string; url: () => string; rounds?: number }> = [
      { name: "first page", url: () => "/users?limit=50" },
      {
        name: "deep page (random cursor)",
        url: () =>
          `/users?limit=50&cursor=${cursorOf(sample[Math.floor(Math.random() * sample.length)]!.id)}`,
      },
      { name: "status=expired (1%)", url: () => "/users?limit=50&status=expired" },
      {
        name: "status=active, random cursor",
        url: () =>
          `/users?limit=50&status=active&cursor=${cursorOf(sample[Math.floor(Math.random() * sample.length)]!.id)}`,
      },
      {
        name: "name prefix (seed-NN…)",
        url: () => `/users?limit=50&username=seed-${10 + Math.floor(Math.random() * 90)}`,
      },
      {
        name: "name prefix, deep page",
        url: () =>
          `/users?limit=50&username=seed-&cursor=${Buffer.from(`users-name:seed-${Math.floor(Math.random() * 900_000)}`).toString("base64url")}`,
      },
      // Diagnostic: a GIN match list has no order, so a word in many notes costs one heap page per note.
      { name: "note word in 18k notes", url: () => "/users?limit=50&note=vip%20reseller", rounds: 50 },
      {
        name: "note word in one note",
        url: () => `/users?limit=50&note=${50 * (1 + Math.floor(Math.random() * 18_000))}`,
        rounds: 50,
      },
    ];
    for (const sc of scenarios) {
      const rounds = sc.rounds ?? 500;
      for (let i = 0; i < Math.min(20, rounds / 5); i++)
        await app.inject({ method: "GET", url: sc.url(), headers: auth });
      const lat: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const started = performance.now();
        const r = await app.inject({ method: "GET", url: sc.url(), headers: auth });
        lat.push(performance.now() - started);
        if (r.statusCode !== 200) throw new Error(`${sc.name}: ${r.statusCode} ${r.body.slice(0, 200)}`);
      }
      const l = summary(lat);
      say(
        `    ${sc.name.padEnd(32)} p50 ${ms(l.p50).padStart(9)}  p99 ${ms(l.p99).padStart(9)}  max ${ms(l.max).padStart(9)}  (${rounds} requests)`,
      );
    }

    say("\n    EXPLAIN (ANALYZE, BUFFERS) of the list statements:");
    const mid = sample[Math.floor(sample.length / 2)]!.id;
    for (const [name, q] of [
      ["deep page", userPageQuery(tenant.id, {}, { limit: 50, after: mid })],
      ["status=expired", userPageQuery(tenant.id, { status: "expired" }, { limit: 50 })],
      ["name prefix", userPageQuery(tenant.id, { username: "seed-12" }, { limit: 50 })],
      [
        "name prefix, next page",
        userPageQuery(tenant.id, { username: "seed-1" }, { limit: 50, after: "seed-15" }),
      ],
      ["note words (common)", userPageQuery(tenant.id, { note: "vip reseller" }, { limit: 50 })],
      ["note words (rare)", userPageQuery(tenant.id, { note: "12350" }, { limit: 50 })],
    ] as const) {
      const plan = await queryRows<{ "QUERY PLAN": string }>(
        db,
        sql`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${q}`,
      );
      say(`    -- ${name}`);
      for (const line of plan) say(`       ${line["QUERY PLAN"]}`);
    }
    const expiryPlan = await queryRows<{ "QUERY PLAN": string }>(
      db,
      sql`EXPLAIN (COSTS OFF) SELECT id FROM subscriptions
          WHERE state IN ('active', 'limited') AND expires_at IS NOT NULL AND expires_at <= now() AND next_plan_id IS NULL
          ORDER BY expires_at LIMIT 2000 FOR UPDATE SKIP LOCKED`,
    );
    say("    -- expiry job's due-row scan");
    for (const line of expiryPlan) say(`       ${line["QUERY PLAN"]}`);
    await app.close();
  } finally {
    await scheduler.stop().catch(() => {});
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
    if (o.keep) say(`\nkept database ${dbName}`);
    else await admin(o.databaseUrl, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }
}
