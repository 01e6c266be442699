// Collects the chunks of one snapshot. A snapshot is applied only once all its chunks are here
// (chunk indices 0, 1, … with `last` on the final one). A chunk of another revision, or an index out
// of order, drops the partial snapshot: the agent then asks again with Hello (proto SnapshotChunk).

import type { DesiredUser, NodeConfig, SnapshotChunk } from "@vpnpanel/proto";

export interface AssembledSnapshot {
  revision: bigint;
  users: DesiredUser[];
  /** Only chunk 0 may carry it; undefined = keep the node config the agent has. */
  nodeConfig: NodeConfig | undefined;
  usageCountedThroughSeq: bigint;
}

export type ChunkOutcome =
  | { kind: "partial" }
  | { kind: "complete"; snapshot: AssembledSnapshot }
  | { kind: "broken"; reason: string };

export interface SnapshotAssembler {
  add(chunk: SnapshotChunk): ChunkOutcome;
  reset(): void;
  inProgress(): boolean;
}

export function createSnapshotAssembler(): SnapshotAssembler {
  let current: (AssembledSnapshot & { nextIndex: number }) | null = null;
  return {
    add(chunk) {
      if (chunk.chunkIndex === 0) {
        // A new snapshot (possibly the answer to a resync) replaces any partial one.
        current = {
          revision: chunk.revision,
          users: [],
          nodeConfig: chunk.nodeConfig,
          usageCountedThroughSeq: chunk.usageCountedThroughSeq,
          nextIndex: 0,
        };
      }
      if (!current) return { kind: "broken", reason: `chunk ${chunk.chunkIndex} without chunk 0` };
      if (chunk.revision !== current.revision || chunk.chunkIndex !== current.nextIndex) {
        const reason = `expected chunk ${current.nextIndex} of revision ${current.revision}, got chunk ${chunk.chunkIndex} of revision ${chunk.revision}`;
        current = null;
        return { kind: "broken", reason };
      }
      for (const user of chunk.users) current.users.push(user);
      current.nextIndex++;
      if (!chunk.last) return { kind: "partial" };
      const { nextIndex: _, ...snapshot } = current;
      current = null;
      return { kind: "complete", snapshot };
    },
    reset() {
      current = null;
    },
    inProgress: () => current !== null,
  };
}
