import { appendFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlMessage, type DesiredUser, Engine } from "@vpnpanel/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { scanFrames } from "../queue/framing";
import { DESIRED_FILE, openDesiredStore } from "./desired-store";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "desired-store-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const u = (id: string, suspended = false): DesiredUser => ({
  userId: id,
  email: id,
  engines: [Engine.XRAY],
  xray: { uuid: `uuid-${id}`, trojanPassword: "t", shadowsocksPassword: "s", vmessAlterId: 0, vlessFlow: "" },
  lease: { remainingBytes: 123n, expiresAt: new Date("2026-03-01T00:00:00Z") },
  suspended,
});
const nodeConfig = { xrayInboundsJson: '[{"tag":"a"}]', wireguardInterfaces: [] };

describe("desired-state store", () => {
  it("a snapshot and the changes after it survive a restart, file mode 0600", async () => {
    const store = await openDesiredStore(dir);
    const users = Array.from({ length: 2_500 }, (_, i) => u(`sub_${i}`));
    await store.replace({ revision: 10n, users, nodeConfig, usageCountedThroughSeq: 4n });
    await store.change({ toRevision: 11n, upserts: [u("sub_1", true), u("new")], removals: ["sub_2"] });
    await store.change({ toRevision: 12n, upserts: [], removals: ["sub_3"], usageCountedThroughSeq: 9n });
    await store.close();
    expect((await stat(join(dir, DESIRED_FILE))).mode & 0o777).toBe(0o600);

    const again = await openDesiredStore(dir);
    expect(again.state.revision).toBe(12n);
    expect(again.state.users.size).toBe(2_500 - 2 + 1);
    expect(again.state.users.get("sub_1")?.suspended).toBe(true);
    expect(again.state.users.get("new")?.lease).toEqual(u("new").lease);
    expect(again.state.users.has("sub_2")).toBe(false);
    expect(again.state.nodeConfig).toEqual(nodeConfig);
    expect(again.state.usageCountedThroughSeq).toBe(9n);
    await again.close();
  });

  it("a torn last append is dropped at open; the state before it stands", async () => {
    const store = await openDesiredStore(dir);
    await store.replace({ revision: 1n, users: [u("a")], nodeConfig: null, usageCountedThroughSeq: 0n });
    await store.close();
    await appendFile(join(dir, DESIRED_FILE), Buffer.from([0, 0, 0, 50, 1, 2, 3]));
    const again = await openDesiredStore(dir);
    expect(again.state.revision).toBe(1n);
    await again.change({ toRevision: 2n, upserts: [u("b")], removals: [] });
    await again.close();
    const third = await openDesiredStore(dir);
    expect([...third.state.users.keys()]).toEqual(["a", "b"]);
    expect(third.state.revision).toBe(2n);
    await third.close();
  });

  it("a journal grown past the snapshot is compacted into a new snapshot", async () => {
    const store = await openDesiredStore(dir);
    await store.replace({ revision: 1n, users: [u("a")], nodeConfig: null, usageCountedThroughSeq: 0n });
    const big = Array.from({ length: 20_000 }, (_, i) => u(`bulk_${i}`)); // > 1 MiB of journal
    await store.change({ toRevision: 2n, upserts: big, removals: [] });
    const kinds = scanFrames(await readFile(join(dir, DESIRED_FILE))).records.map(
      (r) => ControlMessage.decode(r).body?.$case,
    );
    expect(new Set(kinds)).toEqual(new Set(["snapshot"]));
    await store.close();
    const again = await openDesiredStore(dir);
    expect(again.state.users.size).toBe(20_001);
    expect(again.state.revision).toBe(2n);
    await again.close();
  });
});
