// The desired state the node last applied (users with credentials and leases, node config, revision),
// kept on disk so that a restarted agent serves its users at once — also while the control plane is
// unreachable — and reports an applied revision that is true. An Xray core does not outlive the agent,
// so without this file a restart would leave the core empty while Hello claimed the revision.
//
// Format: CRC-framed records (queue/framing.ts) whose payloads are encoded proto ControlMessages — a
// full snapshot as SnapshotChunks, then StateDiffs appended per applied change (fsync'd). A new
// snapshot, or a journal grown past the snapshot, rewrites the file (temp file, fsync, rename).
// Writes happen only after the engines applied the change, so the persisted revision never runs
// ahead of what the node serves. In memory the users are kept encoded (compact-users.ts).

import type { FileHandle } from "node:fs/promises";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ControlMessage, type DesiredUser, type NodeConfig, SnapshotChunk } from "@vpnpanel/proto";
import { frame, scanFrames } from "../queue/framing";
import { createDesiredUsers, type DesiredUsers, type MutableDesiredUsers } from "./compact-users";

export interface DesiredState {
  revision: bigint;
  users: DesiredUsers;
  nodeConfig: NodeConfig | null;
  usageCountedThroughSeq: bigint;
}

interface StoredState extends DesiredState {
  users: MutableDesiredUsers;
}

export interface DesiredChange {
  toRevision: bigint;
  upserts: readonly DesiredUser[];
  removals: readonly string[];
  /** Set only when the node config changed. */
  nodeConfig?: NodeConfig | undefined;
  /** 0 = unchanged. */
  usageCountedThroughSeq?: bigint;
}

export interface DesiredStore {
  readonly state: Readonly<DesiredState>;
  replace(next: {
    revision: bigint;
    users: readonly DesiredUser[];
    nodeConfig: NodeConfig | null;
    usageCountedThroughSeq: bigint;
  }): Promise<void>;
  change(change: DesiredChange): Promise<void>;
  close(): Promise<void>;
}

export const DESIRED_FILE = "desired-state.log";
const CHUNK_USERS = 1_000;

function applyChange(state: StoredState, change: DesiredChange): void {
  for (const id of change.removals) state.users.delete(id);
  for (const user of change.upserts) state.users.set(user);
  if (change.nodeConfig) state.nodeConfig = change.nodeConfig;
  if (change.usageCountedThroughSeq) state.usageCountedThroughSeq = change.usageCountedThroughSeq;
  state.revision = change.toRevision;
}

/** Field numbers of ControlMessage.snapshot and SnapshotChunk.users (proto/…/node_control.proto). */
const CONTROL_SNAPSHOT_FIELD = 1;
const CHUNK_USERS_FIELD = 4;

/**
 * One snapshot record: ControlMessage{snapshot: SnapshotChunk}, with the users' stored encodings
 * spliced in as they are (a repeated field may follow the chunk's other fields), so a rewrite of 100k
 * users neither decodes nor re-encodes them.
 */
function snapshotRecord(state: DesiredState, index: number, last: boolean, users: Uint8Array[]): Buffer {
  const chunk = SnapshotChunk.encode({
    revision: state.revision,
    chunkIndex: index,
    last,
    users: [],
    nodeConfig: index === 0 && state.nodeConfig ? state.nodeConfig : undefined,
    usageCountedThroughSeq: state.usageCountedThroughSeq,
  }).finish();
  const w = new BinaryWriter().tag(CONTROL_SNAPSHOT_FIELD, WireType.LengthDelimited).fork().raw(chunk);
  for (const user of users) w.tag(CHUNK_USERS_FIELD, WireType.LengthDelimited).bytes(user);
  return frame(w.join().finish());
}

function* snapshotFrames(state: DesiredState): Generator<Buffer> {
  let index = 0;
  let part: Uint8Array[] = [];
  let seen = 0;
  for (const user of state.users.encoded()) {
    part.push(user);
    seen++;
    if (part.length === CHUNK_USERS) {
      yield snapshotRecord(state, index++, seen === state.users.size, part);
      part = [];
    }
  }
  // Always at least one record: an empty snapshot still carries the revision and node config.
  if (part.length > 0 || index === 0) yield snapshotRecord(state, index, true, part);
}

export async function openDesiredStore(dir: string): Promise<DesiredStore> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, DESIRED_FILE);
  await rm(`${path}.tmp`, { force: true });
  const state: StoredState = {
    revision: 0n,
    users: createDesiredUsers(),
    nodeConfig: null,
    usageCountedThroughSeq: 0n,
  };

  const data = await readFile(path).catch(() => Buffer.alloc(0));
  const { records, validBytes } = scanFrames(data);
  if (validBytes < data.length) {
    // A torn last append: that change was never acknowledged (the ack follows the fsync).
    const fh = await open(path, "r+");
    await fh.truncate(validBytes);
    await fh.datasync();
    await fh.close();
  }
  let snapshotBytes = 0;
  let journalBytes = 0;
  for (const payload of records) {
    const body = ControlMessage.decode(payload).body;
    if (body?.$case === "snapshot") {
      const chunk = body.value;
      if (chunk.chunkIndex === 0) {
        state.users.clear();
        state.nodeConfig = chunk.nodeConfig ?? null;
        state.revision = chunk.revision;
        state.usageCountedThroughSeq = chunk.usageCountedThroughSeq;
        snapshotBytes = 0;
        journalBytes = 0;
      }
      for (const user of chunk.users) state.users.set(user);
      snapshotBytes += payload.length + 8;
    } else if (body?.$case === "diff") {
      const d = body.value;
      applyChange(state, {
        toRevision: d.toRevision,
        upserts: d.upserts,
        removals: d.removals,
        nodeConfig: d.nodeConfig,
        usageCountedThroughSeq: d.usageCountedThroughSeq,
      });
      journalBytes += payload.length + 8;
    }
  }
  let fh: FileHandle = await open(path, "a", 0o600);

  async function rewrite(): Promise<void> {
    const tmp = `${path}.tmp`;
    const out = await open(tmp, "w", 0o600);
    let size = 0;
    try {
      for (const f of snapshotFrames(state)) {
        await out.write(f);
        size += f.length;
      }
      await out.datasync();
    } finally {
      await out.close();
    }
    await fh.close();
    await rename(tmp, path);
    const d = await open(dirname(path), "r");
    await d.sync();
    await d.close();
    fh = await open(path, "a", 0o600);
    snapshotBytes = size;
    journalBytes = 0;
  }

  return {
    state,
    async replace(next) {
      state.users = createDesiredUsers(next.users);
      state.nodeConfig = next.nodeConfig;
      state.revision = next.revision;
      state.usageCountedThroughSeq = next.usageCountedThroughSeq;
      await rewrite();
    },
    async change(change) {
      const payload = ControlMessage.encode({
        body: {
          $case: "diff",
          value: {
            fromRevision: state.revision,
            toRevision: change.toRevision,
            upserts: [...change.upserts],
            removals: [...change.removals],
            nodeConfig: change.nodeConfig,
            usageCountedThroughSeq: change.usageCountedThroughSeq ?? 0n,
          },
        },
      }).finish();
      const bytes = frame(payload);
      try {
        await fh.write(bytes);
        await fh.datasync();
      } catch (error) {
        // A half-written frame must not stay: recovery stops at the first bad frame.
        await fh.truncate(snapshotBytes + journalBytes).catch(() => undefined);
        throw error;
      }
      journalBytes += bytes.length;
      applyChange(state, change);
      if (journalBytes > Math.max(1024 * 1024, snapshotBytes)) await rewrite();
    },
    close: () => fh.close(),
  };
}
