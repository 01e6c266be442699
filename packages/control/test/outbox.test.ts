import { advanceOutbox, appendOutbox, readOutbox } from "@vpnpanel/control";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/support/database";

let t: TestDatabase;

// The visibility horizon is the oldest transaction still running in the whole cluster, so on a shared
// PostgreSQL server another database's open transaction delays delivery. Wait (bounded) for it.
async function readWhenVisible(consumer: string, atLeast: number) {
  for (let i = 0; i < 300; i++) {
    const rows = await readOutbox(t.database.db, consumer);
    if (rows.length >= atLeast) return rows;
    await new Promise((r) => setTimeout(r, 100));
  }
  return readOutbox(t.database.db, consumer);
}
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

describe("outbox", () => {
  it("delivers committed events in order, per consumer, and never re-delivers behind the cursor", async () => {
    const db = t.database.db;
    await db.transaction(async (tx) => {
      await appendOutbox(tx, [
        { tenantId: "tnt_a", topic: "user.created", subjectId: "sub_1", payload: { n: 1 } },
        { tenantId: "tnt_a", topic: "user.limited", subjectId: "sub_1", payload: { n: 2 } },
      ]);
    });
    const first = await readWhenVisible("webhooks", 2);
    expect(first.map((e) => e.topic)).toEqual(["user.created", "user.limited"]);
    expect(first[1]?.payload).toEqual({ n: 2 });
    await advanceOutbox(db, "webhooks", first[0]!.id);
    expect((await readOutbox(db, "webhooks")).map((e) => e.topic)).toEqual(["user.limited"]);
    // Another consumer has its own cursor.
    expect(await readOutbox(db, "nodes")).toHaveLength(2);
    // The cursor never moves back.
    await advanceOutbox(db, "webhooks", first[1]!.id);
    await advanceOutbox(db, "webhooks", first[0]!.id);
    expect(await readOutbox(db, "webhooks")).toEqual([]);
  });

  it("does not show events of a transaction that has not committed", async () => {
    const db = t.database.db;
    if (t.database.kind === "pglite") return; // one connection: no concurrent transaction to observe
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const pending = db.transaction(async (tx) => {
      await appendOutbox(tx, { tenantId: null, topic: "user.deleted", subjectId: "sub_slow" });
      await gate;
    });
    await new Promise((r) => setTimeout(r, 50));
    const seen = await readOutbox(db, "slow-check");
    expect(seen.find((e) => e.subjectId === "sub_slow")).toBeUndefined();
    release();
    await pending;
    expect((await readWhenVisible("slow-check", 1)).find((e) => e.subjectId === "sub_slow")).toBeDefined();
  });
});
