import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { type Database, queryRows } from "./client";

// Plain SQL migrations, applied in file-name order, each in its own transaction, recorded in
// `schema_migrations`. Hand-written SQL (not generated) because partitions and triggers are beyond
// drizzle-kit, and the same files must run on PGlite (PG 18) and PostgreSQL 15.

export const migrationsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "migrations");
const MIGRATION_LOCK = 7_310_001;

export interface Migration {
  version: string;
  name: string;
  sql: string;
}

export function listMigrations(dir = migrationsDir): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.slice(0, 4), name: f.slice(5, -4), sql: readFileSync(join(dir, f), "utf8") }));
}

export async function migrate(database: Database, dir = migrationsDir): Promise<string[]> {
  return database.withAdvisoryLock(MIGRATION_LOCK, async () => {
    await database.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await queryRows<{ version: string }>(
      database.db,
      sql`SELECT version FROM schema_migrations`,
    );
    const done = new Set(rows.map((r) => r.version));
    const applied: string[] = [];
    for (const m of listMigrations(dir)) {
      if (done.has(m.version)) continue;
      const record = `INSERT INTO schema_migrations (version, name) VALUES ('${m.version}', '${m.name}');`;
      await database.exec(`BEGIN;\n${m.sql}\n;${record}\nCOMMIT;`).catch(async (e) => {
        await database.exec("ROLLBACK").catch(() => {});
        throw new Error(`migration ${m.version}_${m.name} failed: ${(e as Error).message}`);
      });
      applied.push(`${m.version}_${m.name}`);
    }
    return applied;
  });
}
