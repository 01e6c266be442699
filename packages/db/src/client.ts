import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import type { SQL } from "drizzle-orm";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import pg from "pg";
import * as schema from "./schema";

export type Schema = typeof schema;
// Both drivers produce the same query builder; code is written once against this type.
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type DbOrTx = Db | Tx;

export interface Database {
  readonly kind: "pglite" | "postgres";
  readonly db: Db;
  /** Runs a multi-statement SQL script (migrations); no parameters. */
  exec(script: string): Promise<void>;
  /** Runs a function holding a session-level advisory lock (serializes migrations across replicas). */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// pg returns int8 as strings by default; we keep them as strings at the driver level and convert to
// bigint in the data layer where byte counts matter, so no precision is lost past 2^53.

export interface OpenOptions {
  /** `postgres://…` for a server; otherwise a PGlite data directory, or `memory://`. */
  url: string;
  poolSize?: number;
  /** Pre-built PGlite data directory dump (tests load a migrated template instead of migrating again). */
  pgliteLoadDataDir?: Blob;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (/^postgres(ql)?:\/\//.test(opts.url)) return openPostgres(opts.url, opts.poolSize ?? 10);
  return openPglite(opts.url, opts.pgliteLoadDataDir);
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: "vpnpanel" });
  // A dropped idle connection (database restart) must not crash the process; the pool replaces it.
  pool.on("error", () => {});
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    kind: "postgres",
    db,
    async exec(script) {
      await pool.query(script);
    },
    async withAdvisoryLock(key, fn) {
      // A dedicated connection outside the pool holds the lock, so the work inside can use the whole
      // pool (with a pool of one, holding the lock on a pooled connection would deadlock).
      const client = new pg.Client({ connectionString: url, application_name: "vpnpanel-lock" });
      await client.connect();
      try {
        await client.query("SELECT pg_advisory_lock($1)", [key]);
        return await fn();
      } finally {
        await client.end();
      }
    },
    async ping() {
      await pool.query("SELECT 1");
    },
    async close() {
      await pool.end();
    },
  };
}

async function openPglite(url: string, loadDataDir?: Blob): Promise<Database> {
  const dataDir = url.startsWith("memory://")
    ? undefined
    : url.replace(/^pglite:\/\//, "").replace(/^file:\/\//, "");
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const client = await PGlite.create({
    ...(dataDir ? { dataDir } : {}),
    ...(loadDataDir ? { loadDataDir } : {}),
  });
  guardOuterQueriesInTransactions(client);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: "pglite",
    db,
    async exec(script) {
      await client.exec(script);
    },
    // PGlite is a single connection inside this process: nothing else can run migrations concurrently.
    withAdvisoryLock: (_key, fn) => fn(),
    async ping() {
      await client.query("SELECT 1");
    },
    async close() {
      await client.close();
    },
  };
}

const insideTransaction = new AsyncLocalStorage<true>();

/**
 * PGlite is one connection: while a transaction is open, any query through the outer handle waits for
 * that transaction to end. If the waiting query was issued from inside the transaction's own callback,
 * it waits forever. This turns that silent hang into an immediate error naming the mistake (on
 * PostgreSQL the same code would quietly run outside the transaction, which is a bug too).
 */
function guardOuterQueriesInTransactions(client: PGlite) {
  const c = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const transaction = c.transaction!.bind(client);
  c.transaction = (fn: unknown) => insideTransaction.run(true, () => transaction(fn));
  for (const method of ["query", "exec"] as const) {
    const original = c[method]!.bind(client);
    c[method] = (...args: unknown[]) => {
      if (insideTransaction.getStore()) {
        return Promise.reject(
          new Error("query through the outer database handle inside a transaction: use the transaction (tx)"),
        );
      }
      return original(...args);
    };
  }
}

/** Runs raw SQL and returns its rows (both drivers put them on `.rows`). */
export async function queryRows<T>(db: DbOrTx, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}
