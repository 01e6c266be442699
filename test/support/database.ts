import { createHash, randomBytes } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import { type Database, listMigrations, migrate, openDatabase } from "@vpnpanel/db";
import pg from "pg";

// Test databases. Each test file gets its own, already migrated:
// - DATABASE_URL set: a fresh PostgreSQL database cloned from a migrated template (CREATE DATABASE …
//   TEMPLATE), named after a hash of the migrations so a changed migration builds a new template.
// - otherwise: an in-memory PGlite loaded from a migrated dump made once per worker.

export const serverUrl = process.env.DATABASE_URL;

function migrationsHash(): string {
  const h = createHash("sha256");
  for (const m of listMigrations()) h.update(m.version).update(m.sql);
  return h.digest("hex").slice(0, 12);
}

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: withDb(url, "postgres") });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

let templateReady: Promise<string> | null = null;

async function ensureTemplate(url: string): Promise<string> {
  const name = `vpt_tpl_${migrationsHash()}`;
  await admin(url, async (c) => {
    // Several vitest workers race to build the template; one builds it, the others wait on the lock.
    await c.query("SELECT pg_advisory_lock(7310099)");
    try {
      const exists = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
      if (exists.rowCount) return;
      // Built under a temporary name and renamed when complete: an interrupted build never leaves a
      // half-migrated template behind.
      const building = `${name}_b${randomBytes(3).toString("hex")}`;
      await c.query(`CREATE DATABASE ${building}`);
      const db = await openDatabase({ url: withDb(url, building), poolSize: 1 });
      try {
        await migrate(db);
      } finally {
        await db.close();
      }
      await c.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    } finally {
      await c.query("SELECT pg_advisory_unlock(7310099)");
    }
  });
  return name;
}

let pgliteDump: Promise<Blob> | null = null;

async function migratedPgliteDump(): Promise<Blob> {
  const db = await PGlite.create();
  const { drizzle } = await import("drizzle-orm/pglite");
  const wrapped: Database = {
    kind: "pglite",
    db: drizzle(db) as never,
    exec: async (s) => {
      await db.exec(s);
    },
    withAdvisoryLock: (_k, fn) => fn(),
    ping: async () => {},
    close: () => db.close(),
  };
  await migrate(wrapped);
  const dump = await db.dumpDataDir("none");
  await db.close();
  return dump;
}

export interface TestDatabase {
  database: Database;
  /** The connection URL (server mode) so other processes (a collector under test) can connect. */
  url: string | null;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  if (serverUrl) {
    templateReady ??= ensureTemplate(serverUrl);
    const template = await templateReady;
    const name = `vpt_${randomBytes(6).toString("hex")}`;
    await admin(serverUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
    const url = withDb(serverUrl, name);
    const database = await openDatabase({ url, poolSize: 10 });
    return {
      database,
      url,
      async drop() {
        await database.close().catch(() => {});
        await admin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      },
    };
  }
  pgliteDump ??= migratedPgliteDump();
  const database = await openDatabase({ url: "memory://", pgliteLoadDataDir: await pgliteDump });
  return { database, url: null, drop: () => database.close() };
}
