import type { Database } from "@vpnpanel/db";

// Keeps a node-postgres pool usable across a database restart. Two failure modes, both seen in
// apps/collector/test/pg-restart.test.ts:
// 1. A checked-out client whose connection dies between two queries emits "error"; without a
//    listener that is an uncaught exception that ends the process.
// 2. drizzle's transaction() sends BEGIN before its try/finally, so a BEGIN that fails (a pooled
//    connection the server already dropped) never releases the client: after a restart the pool
//    runs out of clients and every later query waits forever.
// The guard adds the listener, and releases the client (with the error, so the pool discards it)
// when BEGIN fails. Idempotent; a no-op for PGlite.

type Client = {
  on(event: string, fn: (...a: unknown[]) => void): void;
  query: (...args: unknown[]) => unknown;
  release(err?: unknown): void;
  __vpnpanelGuarded?: boolean;
};

const guarded = new WeakSet<object>();

function isBegin(arg: unknown): boolean {
  const text = typeof arg === "string" ? arg : (arg as { text?: unknown } | null)?.text;
  return typeof text === "string" && /^\s*begin\b/i.test(text);
}

export function guardPostgresPool(database: Database): void {
  if (database.kind !== "postgres") return;
  const pool = (
    database.db as unknown as {
      $client?: { on(e: string, f: (c: Client) => void): void; _clients?: Client[] };
    }
  ).$client;
  if (!pool || guarded.has(pool)) return;
  guarded.add(pool);
  // Clients opened before the guard (migrations at start) are in the pool already.
  for (const client of pool._clients ?? []) guardClient(client);
  pool.on("connect", guardClient);
}

function guardClient(client: Client): void {
  if (client.__vpnpanelGuarded) return;
  client.__vpnpanelGuarded = true;
  client.on("error", () => {});
  const query = client.query.bind(client);
  client.query = (...args: unknown[]) => {
    const result = query(...args);
    if (isBegin(args[0]) && result && typeof (result as Promise<unknown>).then === "function") {
      return (result as Promise<unknown>).catch((error: unknown) => {
        client.release(error);
        throw error;
      });
    }
    return result;
  };
}
