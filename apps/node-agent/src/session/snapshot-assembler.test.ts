import type { SnapshotChunk } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import { createSnapshotAssembler } from "./snapshot-assembler";

const chunk = (revision: bigint, chunkIndex: number, last: boolean, ids: string[]): SnapshotChunk => ({
  revision,
  chunkIndex,
  last,
  users: ids.map((userId) => ({ userId, email: userId, engines: [], suspended: false })),
  nodeConfig: chunkIndex === 0 ? { xrayInboundsJson: "[]", wireguardInterfaces: [] } : undefined,
  usageCountedThroughSeq: 9n,
});

describe("snapshot assembler", () => {
  it("completes only on the chunk flagged last, with every user in order", () => {
    const a = createSnapshotAssembler();
    expect(a.add(chunk(5n, 0, false, ["a", "b"]))).toEqual({ kind: "partial" });
    expect(a.add(chunk(5n, 1, false, ["c"]))).toEqual({ kind: "partial" });
    const done = a.add(chunk(5n, 2, true, ["d"]));
    expect(done.kind).toBe("complete");
    if (done.kind !== "complete") return;
    expect(done.snapshot.users.map((u) => u.userId)).toEqual(["a", "b", "c", "d"]);
    expect(done.snapshot.revision).toBe(5n);
    expect(done.snapshot.nodeConfig).toEqual({ xrayInboundsJson: "[]", wireguardInterfaces: [] });
    expect(done.snapshot.usageCountedThroughSeq).toBe(9n);
    expect(a.inProgress()).toBe(false);
  });

  it("a single chunk can be the whole snapshot", () => {
    expect(createSnapshotAssembler().add(chunk(1n, 0, true, [])).kind).toBe("complete");
  });

  it("a missing index or another revision drops the partial snapshot", () => {
    const a = createSnapshotAssembler();
    a.add(chunk(5n, 0, false, ["a"]));
    expect(a.add(chunk(5n, 2, true, ["c"])).kind).toBe("broken");
    expect(a.inProgress()).toBe(false);
    a.add(chunk(5n, 0, false, ["a"]));
    expect(a.add(chunk(6n, 1, true, ["c"])).kind).toBe("broken");
    expect(a.add(chunk(6n, 1, true, ["c"])).kind).toBe("broken"); // no chunk 0 any more
  });

  it("a new chunk 0 restarts assembly (the answer to a resync)", () => {
    const a = createSnapshotAssembler();
    a.add(chunk(5n, 0, false, ["old"]));
    a.add(chunk(7n, 0, false, ["a"]));
    const done = a.add(chunk(7n, 1, true, ["b"]));
    expect(done.kind === "complete" && done.snapshot.users.map((u) => u.userId)).toEqual(["a", "b"]);
  });
});
