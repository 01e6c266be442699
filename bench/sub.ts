import { type ChildProcess, fork } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { buildApi } from "@vpnpanel/api";
import { createSecretBox, newId } from "@vpnpanel/common";
import {
  createControlPlane,
  credentialContext,
  loadControlConfig,
  subscriptionTokenContext,
} from "@vpnpanel/control";
import { migrate, openDatabase } from "@vpnpanel/db";
import Fastify from "fastify";
import pg from "pg";
import { option } from "./args";

// `npm run bench -- sub [--users N] [--duration S] [--runs N] [--redis URL] [--keep]`
//
// GET /sub/{token} with 100,000 subscribers in local PostgreSQL. Seeds a fresh database with
// set-based SQL (unnest batches), starts the real API in a child process (its own event loop and CPU,
// as in production) and, in another child, a bare Fastify "hello" route as the ceiling. Load comes
// from autocannon's programmatic API in this process, on loopback, with a common client User-Agent
// and a random subscriber per request. Phases: ceiling, /sub throughput, /sub at a fixed 1,000 req/s,
// and 304 revalidations (If-None-Match with each token's current ETag).

const require = createRequire(import.meta.url);
type Histogram = {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
};
interface AutocannonResult {
  requests: Histogram & { total: number; sent: number };
  latency: Histogram;
  throughput: Histogram;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = require("autocannon") as Autocannon;

const BENCH_SECRET = Buffer.alloc(32, 9).toString("base64");
const UA = "v2rayN/6.42";
const GIB = 1024 ** 3;

function parseArgs(args: string[]) {
  const get = (name: string) => option(args, name);
  return {
    users: Number(get("users") ?? 100_000),
    duration: Number(get("duration") ?? 10),
    runs: Number(get("runs") ?? 3),
    connections: Number(get("connections") ?? 64),
    databaseUrl: get("database") ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: get("redis") ?? process.env.REDIS_URL,
    keep: args.includes("--keep"),
    /** Reuse a database kept by an earlier `--keep` run (skips seeding). */
    reuse: get("reuse"),
    /** Request every subscriber's document once before measuring (a warm cache: give SUB_CACHE_MEMORY_MB room). */
    prewarm: args.includes("--prewarm"),
    phases: new Set((get("phases") ?? "ceiling,sub,fixed,304").split(",")),
  };
}

const withDb = (url: string, name: string) => {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
};

// ---------------------------------------------------------------------------------------------------
// Servers (child processes)

async function serveApi(databaseUrl: string, redisUrl: string | undefined) {
  const config = loadControlConfig({
    DATABASE_URL: databaseUrl,
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    SECRET_KEY: BENCH_SECRET,
    LOG_LEVEL: "warn",
    ROLES: "api",
    PUBLIC_URL: "https://panel.example.com",
    // Feed settings (SUB_*) can be varied from the environment of the bench run.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("SUB_"))),
  });
  const cp = await createControlPlane(config, { skipMigrations: true });
  const { app } = await buildApi(cp);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  // Exit through process.exit so --cpu-prof (BENCH_SERVER_FLAGS) can write its profile.
  process.on("SIGTERM", () => process.exit(0));
  process.on("message", (m) => {
    if (m === "stats") process.send?.({ stats: cp.subscriptionFeed.stats() });
  });
  process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
}

async function serveHello() {
  const app = Fastify({ logger: false });
  app.get("/", async () => "hello");
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
}

interface Server {
  child: ChildProcess;
  port: number;
  cpuSeconds(): number;
  stats(): Promise<Record<string, number>>;
}

function startServer(args: string[]): Promise<Server> {
  const runPath = fileURLToPath(new URL("./run.ts", import.meta.url));
  const extra = process.env.BENCH_SERVER_FLAGS?.split(" ").filter(Boolean) ?? [];
  const child = fork(runPath, ["sub", "--serve", ...args], {
    execArgv: ["--import", "tsx", ...(args[0] === "api" ? extra : [])],
    stdio: "inherit",
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
    child.once("message", (m: { port: number }) =>
      resolve({
        child,
        port: m.port,
        // utime + stime from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
        cpuSeconds: () => {
          const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
          return (Number(fields[11]) + Number(fields[12])) / 100;
        },
        stats: () =>
          new Promise((res) => {
            child.once("message", (r: { stats: Record<string, number> }) => res(r.stats));
            child.send("stats");
          }),
      }),
    );
  });
}

function stopServer(s: Server) {
  s.child.removeAllListeners("exit");
  s.child.kill("SIGTERM");
}

// ---------------------------------------------------------------------------------------------------
// Seeding: set-based, 10,000 rows per statement

const xrayInbounds = [
  {
    tag: "vless-reality",
    protocol: "vless",
    port: 443,
    flow: "xtls-rprx-vision",
    transport: { type: "tcp" },
    security: {
      type: "reality",
      fingerprint: "chrome",
      reality: {
        publicKey: "2D-qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8",
        shortId: "0123abcd",
        serverName: "www.example.org",
      },
    },
  },
  {
    tag: "vmess-ws",
    protocol: "vmess",
    port: 8080,
    transport: { type: "ws", path: "/ws", host: "cdn.example.com" },
    security: { type: "tls", sni: "cdn.example.com", fingerprint: "chrome" },
    hosts: [
      { address: "cdn1.example.com", port: 443, remark: "{NODE} CDN-1 {DATA_LEFT}" },
      { address: "cdn2.example.com", port: 443 },
    ],
  },
  {
    tag: "trojan-grpc",
    protocol: "trojan",
    port: 2083,
    transport: { type: "grpc", serviceName: "tg" },
    security: { type: "tls", sni: "de.example.com" },
  },
  {
    tag: "ss",
    protocol: "shadowsocks",
    port: 8388,
    transport: { type: "tcp" },
    security: { type: "none" },
    shadowsocks: { method: "chacha20-ietf-poly1305" },
  },
];
const v2rayInbounds = [
  {
    tag: "vmess-ws-tls",
    protocol: "vmess",
    port: 443,
    transport: { type: "ws", path: "/v" },
    security: { type: "tls", sni: "legacy.example.com" },
  },
  {
    tag: "vless-tcp-tls",
    protocol: "vless",
    port: 8443,
    transport: { type: "tcp" },
    security: { type: "tls", sni: "legacy.example.com" },
  },
];

async function seed(url: string, users: number): Promise<string[]> {
  const box = createSecretBox(Buffer.from(BENCH_SECRET, "base64"));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const tenantId = newId("tnt");
  await client.query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'Bench', 'bench')", [tenantId]);
  const wgKey = randomBytes(32).toString("base64");
  const nodes = [
    { id: newId("node"), name: "Frankfurt", core: "xray", inbounds: xrayInbounds, wg: true },
    { id: newId("node"), name: "Legacy", core: "v2ray", inbounds: v2rayInbounds, wg: false },
  ];
  for (const n of nodes) {
    await client.query(
      `INSERT INTO nodes (id, tenant_id, name, address, core, engines, inbounds, wireguard, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active')`,
      [
        n.id,
        tenantId,
        n.name,
        `${n.name.toLowerCase()}.example.com`,
        n.core,
        n.wg ? ["xray", "wireguard"] : ["xray"],
        JSON.stringify(n.inbounds),
        n.wg ? JSON.stringify({ listenPort: 51820, addresses: ["10.80.0.1/12"], dns: ["1.1.1.1"] }) : null,
      ],
    );
    if (n.wg) {
      await client.query(
        `INSERT INTO node_health (node_id, connected, wireguard_interfaces) VALUES ($1, true, $2)`,
        [n.id, JSON.stringify([{ name: "wg0", public_key: wgKey, listen_port: 51820, peer_count: users }])],
      );
    }
  }
  await client.query(
    "INSERT INTO ip_pools (id, name, cidr_v4, cidr_v6) VALUES ('pool_bench', 'bench', '10.80.0.0/12', 'fd80::/64')",
  );

  const tokens: string[] = [];
  const CHUNK = 10_000;
  const t0 = Date.now();
  for (let start = 0; start < users; start += CHUNK) {
    const n = Math.min(CHUNK, users - start);
    const cols: Record<string, unknown[]> = {
      uid: [],
      sid: [],
      name: [],
      hash: [],
      tokenEnc: [],
      quota: [],
      used: [],
      xuuid: [],
      trojan: [],
      ss: [],
      wgPriv: [],
      wgPub: [],
      psk: [],
      offset: [],
    };
    for (let i = 0; i < n; i++) {
      const k = start + i;
      const uid = newId("usr");
      const sid = newId("sub");
      const token = randomBytes(24).toString("base64url");
      tokens.push(token);
      cols.uid!.push(uid);
      cols.sid!.push(sid);
      cols.name!.push(`user${k}`);
      cols.hash!.push(createHash("sha256").update(token).digest("hex"));
      cols.tokenEnc!.push(box.encrypt(token, subscriptionTokenContext(sid)));
      cols.quota!.push(String(100 * GIB));
      cols.used!.push(String(Math.floor(Math.random() * 50 * GIB)));
      cols.xuuid!.push(randomUUID());
      cols.trojan!.push(
        box.encrypt(randomBytes(18).toString("base64url"), credentialContext("trojan_password", uid)),
      );
      cols.ss!.push(
        box.encrypt(randomBytes(32).toString("base64"), credentialContext("shadowsocks_password", uid)),
      );
      // Random 32-byte keys: the feed only decrypts and prints them; key-pair math is not under test.
      cols.wgPriv!.push(
        box.encrypt(randomBytes(32).toString("base64"), credentialContext("wg_private_key", uid)),
      );
      cols.wgPub!.push(randomBytes(32).toString("base64"));
      cols.psk!.push(
        box.encrypt(randomBytes(32).toString("base64"), credentialContext("wg_preshared_key", uid)),
      );
      cols.offset!.push(String(k));
    }
    await client.query("BEGIN");
    await client.query(
      `INSERT INTO users (id, tenant_id, username) SELECT u, $1, n FROM unnest($2::text[], $3::text[]) AS x(u, n)`,
      [tenantId, cols.uid, cols.name],
    );
    await client.query(
      `INSERT INTO subscriptions (id, tenant_id, user_id, state, quota_bytes, engines, started_at, expires_at, token_hash, token_enc)
       SELECT s, $1, u, 'active', q, ARRAY['xray','wireguard'], now(), now() + interval '30 days', h, e
       FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS x(s, u, q, h, e)`,
      [tenantId, cols.sid, cols.uid, cols.quota, cols.hash, cols.tokenEnc],
    );
    await client.query(
      `INSERT INTO subscription_usage (subscription_id, used_bytes, upload_bytes, download_bytes, lifetime_bytes)
       SELECT s, b, b / 5, b - b / 5, b FROM unnest($1::text[], $2::bigint[]) AS x(s, b)`,
      [cols.sid, cols.used],
    );
    await client.query(
      `INSERT INTO credentials (user_id, tenant_id, xray_uuid, trojan_password_enc, shadowsocks_password_enc,
                                wg_private_key_enc, wg_public_key, wg_preshared_key_enc)
       SELECT u, $1, x, t, s, w, p, k
       FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS y(u, x, t, s, w, p, k)`,
      [tenantId, cols.uid, cols.xuuid, cols.trojan, cols.ss, cols.wgPriv, cols.wgPub, cols.psk],
    );
    await client.query(
      `INSERT INTO ip_allocations (pool_id, "offset", user_id) SELECT 'pool_bench', o, u
       FROM unnest($1::bigint[], $2::text[]) AS x(o, u)`,
      [cols.offset, cols.uid],
    );
    await client.query(
      `INSERT INTO node_assignments (subscription_id, node_id, tenant_id)
       SELECT s, n, $1 FROM unnest($2::text[]) AS x(s) CROSS JOIN unnest($3::text[]) AS y(n)`,
      [tenantId, cols.sid, nodes.map((n) => n.id)],
    );
    await client.query("COMMIT");
  }
  await client.query(`UPDATE ip_pools SET next_offset = $1`, [users]);
  await client.query("VACUUM ANALYZE");
  const size = await client.query(`SELECT pg_size_pretty(pg_database_size(current_database())) AS s`);
  await client.end();
  process.stdout.write(
    `seeded ${users} users in ${((Date.now() - t0) / 1000).toFixed(1)} s (database ${size.rows[0].s})\n`,
  );
  return tokens;
}

async function storedTokens(url: string): Promise<string[]> {
  const box = createSecretBox(Buffer.from(BENCH_SECRET, "base64"));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{ id: string; token_enc: string }>(
    "SELECT id, token_enc FROM subscriptions",
  );
  await client.end();
  return rows.map((r) => box.decrypt(r.token_enc, subscriptionTokenContext(r.id)));
}

// ---------------------------------------------------------------------------------------------------
// Load

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

interface Phase {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  cpu: number;
  /** Server CPU time per request (µs): what the request costs, whatever else runs on the machine. */
  cpuUs: number;
  codes: string;
}

async function load(
  label: string,
  server: Server,
  opts: {
    path?: () => { path: string; headers?: Record<string, string> };
    duration: number;
    connections: number;
    rate?: number;
  },
): Promise<Phase> {
  const cpu0 = server.cpuSeconds();
  const r = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: opts.connections,
    duration: opts.duration,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    ...(opts.path
      ? {
          requests: [
            {
              method: "GET",
              setupRequest: (req: { path: string; headers: Record<string, string> }) => {
                const next = opts.path!();
                return {
                  ...req,
                  path: next.path,
                  headers: { ...req.headers, "user-agent": UA, ...next.headers },
                };
              },
            },
          ],
        }
      : {}),
  });
  const cpuSeconds = server.cpuSeconds() - cpu0;
  const cpu = cpuSeconds / r.duration;
  const codes = Object.entries(r.statusCodeStats)
    .map(([code, s]) => `${code}×${s.count}`)
    .join(" ");
  const phase = {
    label,
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    p999: r.latency.p99_9,
    cpu,
    cpuUs: (cpuSeconds * 1e6) / Math.max(1, r.requests.total),
    codes: `${codes}${r.errors ? ` errors×${r.errors}` : ""}${r.timeouts ? ` timeouts×${r.timeouts}` : ""}`,
  };
  process.stdout.write(
    `  ${label.padEnd(34)} ${phase.rps.toFixed(0).padStart(7)} req/s  p50 ${phase.p50} ms  p99 ${phase.p99} ms  p99.9 ${phase.p999} ms  server CPU ${cpu.toFixed(2)} (${phase.cpuUs.toFixed(0)} µs/req)  [${phase.codes}]\n`,
  );
  return phase;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function summary(phases: Phase[]) {
  const rps = phases.map((p) => p.rps);
  const p99 = phases.map((p) => p.p99);
  const cpuUs = median(phases.map((p) => p.cpuUs));
  return {
    cpuUs,
    rps: median(rps),
    rpsRange: `${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}`,
    p99: median(p99),
    p99Range: `${Math.min(...p99)}–${Math.max(...p99)}`,
  };
}

export async function main(args: string[]) {
  if (args[0] === "--serve") {
    if (args[1] === "hello") return serveHello();
    return serveApi(args[2]!, args[3] || undefined);
  }
  const o = parseArgs(args);
  const name = o.reuse ?? `vpbench_sub_${randomBytes(3).toString("hex")}`;
  const admin = new pg.Client({ connectionString: withDb(o.databaseUrl, "postgres") });
  await admin.connect();
  if (!o.reuse) await admin.query(`CREATE DATABASE ${name}`);
  const url = withDb(o.databaseUrl, name);
  const servers: Server[] = [];
  try {
    const database = await openDatabase({ url, poolSize: 2 });
    await migrate(database);
    await database.close();
    const tokens = o.reuse ? await storedTokens(url) : await seed(url, o.users);

    process.stdout.write(
      `\nautocannon ${o.connections} connections, ${o.duration} s per run after a 3 s warm-up, ${o.runs} runs; ` +
        `User-Agent "${UA}"; coordination: ${o.redisUrl ? `Redis (${o.redisUrl})` : "in-process"}\n`,
    );
    const hello = await startServer(["hello"]);
    servers.push(hello);
    const api = await startServer(["api", url, o.redisUrl ?? ""]);
    servers.push(api);
    const random = () => ({ path: `/sub/${pick(tokens)}` });

    // The phases are interleaved (ceiling, /sub, 304, ceiling, /sub, 304, …) so that each /sub figure
    // is compared with a ceiling measured under the same background load: the machine is shared.
    let revalidate: (() => { path: string; headers: Record<string, string> }) | null = null;
    if (o.phases.has("304")) {
      // A sample of subscribers whose current ETag the client already holds.
      const sample = Array.from({ length: Math.min(20_000, tokens.length) }, () => pick(tokens));
      const etags = new Map<string, string>();
      for (let i = 0; i < sample.length; i += 200) {
        await Promise.all(
          sample.slice(i, i + 200).map(async (token) => {
            const res = await fetch(`http://127.0.0.1:${api.port}/sub/${token}`, {
              headers: { "user-agent": UA },
            });
            await res.arrayBuffer();
            const etag = res.headers.get("etag");
            if (etag) etags.set(token, etag);
          }),
        );
      }
      const withEtag = [...etags.entries()];
      revalidate = () => {
        const [token, etag] = pick(withEtag);
        return { path: `/sub/${token}`, headers: { "if-none-match": etag } };
      };
      process.stdout.write(`304 sample: ${withEtag.length} subscribers with their current ETag\n`);
    }

    if (o.prewarm) {
      const t0 = Date.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < tokens.length) {
            const token = tokens[next++]!;
            const res = await fetch(`http://127.0.0.1:${api.port}/sub/${token}`, {
              headers: { "user-agent": UA },
            });
            await res.arrayBuffer();
          }
        }),
      );
      process.stdout.write(
        `prewarmed ${tokens.length} documents in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
      );
    }
    process.stdout.write("warm-up (3 s each)\n");
    if (o.phases.has("ceiling")) await load("ceiling", hello, { duration: 3, connections: o.connections });
    if (o.phases.has("sub")) await load("/sub 200", api, { ...o, duration: 3, path: random });
    if (revalidate) await load("/sub 304", api, { ...o, duration: 3, path: revalidate });

    const ceiling: Phase[] = [];
    const sub: Phase[] = [];
    const notModified: Phase[] = [];
    for (let i = 0; i < o.runs; i++) {
      process.stdout.write(`run ${i + 1}\n`);
      if (o.phases.has("ceiling")) ceiling.push(await load("ceiling: bare Fastify 'hello'", hello, o));
      if (o.phases.has("sub"))
        sub.push(await load(`/sub 200, random of ${tokens.length}`, api, { ...o, path: random }));
      if (revalidate)
        notModified.push(await load("/sub 304 (If-None-Match)", api, { ...o, path: revalidate }));
    }

    let fixed: Phase | null = null;
    if (o.phases.has("fixed")) {
      process.stdout.write("fixed rate (16 connections, latency corrected for coordinated omission)\n");
      fixed = await load("/sub 200 at 1,000 req/s, 20 s", api, {
        duration: 20,
        connections: 16,
        rate: 1000,
        path: random,
      });
    }

    const stats = await api.stats();
    process.stdout.write(
      `\nfeed counters: ${JSON.stringify(stats)}\n\nsummary (median of ${o.runs} runs [min–max])\n`,
    );
    const c = ceiling.length ? summary(ceiling) : null;
    const share = (rps: number) => (c ? ` = ${((100 * rps) / c.rps).toFixed(0)} % of ceiling` : "");
    // The same comparison in CPU time, which background load on a shared machine does not distort.
    const cpuShare = (us: number) => (c ? ` = ${((100 * c.cpuUs) / us).toFixed(0)} % of the ceiling's` : "");
    const line = (label: string, phases: Phase[], note = "") => {
      if (!phases.length) return;
      const x = summary(phases);
      process.stdout.write(
        `  ${label.padEnd(24)}${x.rps.toFixed(0)} req/s [${x.rpsRange}]  p99 ${x.p99} ms [${x.p99Range}]${share(x.rps)}${note}\n` +
          `  ${"".padEnd(24)}server CPU ${x.cpuUs.toFixed(0)} µs/request → ${(1e6 / x.cpuUs).toFixed(0)} req/s per busy core${cpuShare(x.cpuUs)}\n`,
      );
    };
    line("ceiling (bare Fastify)", ceiling);
    line("/sub/{token} 200", sub, " (target ≥ 30 %)");
    if (c && sub.length === ceiling.length && sub.length > 0) {
      const ratios = sub.map((x, i) => (100 * x.rps) / ceiling[i]!.rps);
      process.stdout.write(
        `  per-run /sub ÷ ceiling    ${ratios.map((r) => `${r.toFixed(0)} %`).join(", ")}\n`,
      );
    }
    if (fixed) {
      process.stdout.write(
        `  /sub at 1,000 req/s     p50 ${fixed.p50} ms  p99 ${fixed.p99} ms  p99.9 ${fixed.p999} ms (target p99 ≤ 20 ms)\n`,
      );
    }
    line("/sub/{token} 304", notModified);
  } finally {
    for (const s of servers) stopServer(s);
    await new Promise((r) => setTimeout(r, 500));
    if (!o.keep && !o.reuse) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    else process.stdout.write(`kept database ${name}\n`);
    await admin.end();
  }
}
