import { queryRows } from "@vpnpanel/db";
import { Engine } from "@vpnpanel/proto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestAgent } from "./support/agent";
import { createHarness, type Harness } from "./support/harness";

// Usage ingestion through a real mTLS session: every batch is counted exactly once, whatever order
// and however often it arrives, and acked only after it is stored.

let h: Harness;
let nodeId: string;
let agent: TestAgent;
let subs: Awaited<ReturnType<Harness["seed"]>>;

beforeAll(async () => {
  h = await createHarness();
  subs = await h.seed({ count: 5, quotaBytes: null });
  nodeId = await h.createNode();
  agent = h.agent(await h.enrollNode(nodeId));
  agent.hello(0n);
  await agent.waitFor((m) => m.body?.$case === "snapshot" && m.body.value.last);
});
afterAll(async () => {
  await h?.close();
});

async function usage(subscriptionId: string) {
  const rows = await queryRows<{ used: string; up: string; down: string; lifetime: string }>(
    h.cp.database.db,
    sql`SELECT used_bytes::text AS used, upload_bytes::text AS up, download_bytes::text AS down,
               lifetime_bytes::text AS lifetime
        FROM subscription_usage WHERE subscription_id = ${subscriptionId}`,
  );
  return rows[0]!;
}

async function rawRows(seq: bigint) {
  const rows = await queryRows<{ n: number }>(
    h.cp.database.db,
    sql`SELECT count(*)::int AS n FROM traffic_events WHERE node_id = ${nodeId} AND seq = ${seq.toString()}::bigint`,
  );
  return rows[0]!.n;
}

const acked = (seq: bigint, from: number) =>
  agent.waitFor((m) => m.body?.$case === "usageAck" && m.body.value.seq === seq, { from });

describe("exactly-once usage ingestion", () => {
  it("a stored batch is acked after commit and counted once, up and down apart", async () => {
    const from = agent.messages.length;
    const sub = subs[0]!.subscriptionId;
    agent.usage(1n, [{ userId: sub, uplinkBytes: 100n, downlinkBytes: 1000n }]);
    const ack = await acked(1n, from);
    expect(ack.body).toMatchObject({ value: { seq: 1n, duplicate: false } });
    expect(await usage(sub)).toEqual({ used: "1100", up: "100", down: "1000", lifetime: "1100" });
    expect(await rawRows(1n)).toBe(1);
  });

  it("a replayed batch adds nothing and is acked as a duplicate", async () => {
    const sub = subs[0]!.subscriptionId;
    const from = agent.messages.length;
    agent.usage(1n, [{ userId: sub, uplinkBytes: 100n, downlinkBytes: 1000n }]);
    const ack = await acked(1n, from);
    expect(ack.body).toMatchObject({ value: { seq: 1n, duplicate: true } });
    expect(await usage(sub)).toMatchObject({ used: "1100" });
    expect(await rawRows(1n)).toBe(1);
  });

  it("out-of-order and repeated sequences: each seq counts once, every copy is acked", async () => {
    const sub = subs[1]!.subscriptionId;
    const from = agent.messages.length;
    const batch = (seq: bigint) => [{ userId: sub, uplinkBytes: seq * 10n, downlinkBytes: 0n }];
    for (const seq of [4n, 2n, 3n, 2n, 4n, 3n, 5n]) agent.usage(seq, batch(seq));
    await agent.waitFor(() => agent.of("usageAck").filter((a) => a.seq >= 2n && a.seq <= 5n).length >= 7, {
      from,
    });
    const acks = agent.messages
      .slice(from)
      .flatMap((m) => (m.body?.$case === "usageAck" ? [m.body.value] : []));
    expect(acks).toHaveLength(7);
    for (const seq of [2n, 3n, 4n, 5n]) {
      const mine = acks.filter((a) => a.seq === seq);
      expect(mine.filter((a) => !a.duplicate)).toHaveLength(1);
    }
    expect(acks.filter((a) => a.duplicate)).toHaveLength(3);
    // 20 + 30 + 40 + 50
    expect(await usage(sub)).toMatchObject({ used: "140", up: "140" });
  });

  it("unknown and foreign subscribers are skipped, not fatal; repeats of a user and engine are merged", async () => {
    const sub = subs[2]!.subscriptionId;
    const from = agent.messages.length;
    agent.usage(10n, [
      { userId: "sub_doesnotexist0000000000000", uplinkBytes: 5n },
      { userId: sub, uplinkBytes: 1n, downlinkBytes: 2n },
      { userId: sub, uplinkBytes: 3n, downlinkBytes: 4n },
      { userId: sub, engine: Engine.WIREGUARD, uplinkBytes: 7n, downlinkBytes: 0n },
    ]);
    const ack = await acked(10n, from);
    expect(ack.body).toMatchObject({ value: { duplicate: false } });
    expect(await usage(sub)).toMatchObject({ used: "17", up: "11", down: "6" });
    expect(await rawRows(10n)).toBe(2);
    const [batch] = await queryRows<{ samples: number; skipped: number }>(
      h.cp.database.db,
      sql`SELECT samples, skipped FROM usage_batches WHERE node_id = ${nodeId} AND seq = 10`,
    );
    expect(batch).toEqual({ samples: 2, skipped: 1 });
  });

  it("Policy tells a reconnecting agent the highest stored seq", async () => {
    const again = h.agent(await h.enrollNode(nodeId));
    again.hello(0n);
    const policy = await again.waitFor((m) => m.body?.$case === "policy");
    expect(policy.body).toMatchObject({ value: { lastStoredUsageSeq: 10n } });
    again.close();
  });
});
