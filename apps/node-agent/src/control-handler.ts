// What the agent does with each ControlMessage, in arrival order: snapshots (assembled, then applied),
// diffs and commands (applied only on top of the revision they were cut from, otherwise the agent
// asks again with Hello), lease updates and policy. Usage acks bypass the ordered chain: they are
// cheap and must not wait behind a long snapshot apply.

import type {
  Ack,
  AgentMessage,
  Command,
  ControlMessage,
  LeaseUpdate,
  Policy,
  SnapshotChunk,
  StateDiff,
} from "@vpnpanel/proto";
import type { Logger } from "pino";
import type { Applier, ApplyOutcome } from "./desired/applier";
import type { DesiredStore } from "./desired/desired-store";
import { leaseFromProto } from "./desired/user-mapping";
import type { LeaseGuard } from "./enforcement/lease-guard";
import { errorMessage } from "./engines/async-utils";
import type { UsagePump } from "./reporting/usage-pump";
import { NotConnectedError, type SessionHandle } from "./session/connection";
import { createSnapshotAssembler } from "./session/snapshot-assembler";

export interface ControlHandlerDeps {
  applier: Applier;
  store: DesiredStore;
  leases: LeaseGuard;
  usage: UsagePump;
  /** Runs a section under the agent's engine lock. */
  withEngines: <T>(section: () => Promise<T>) => Promise<T>;
  hello: () => AgentMessage;
  onPolicy: (policy: Policy) => Promise<void>;
  onAck?: (seq: number) => void;
  /** Lease enforcement after a lease change (the agent knows whether it is enforcing). */
  enforceLeases: () => Promise<void>;
  now: () => number;
  logger: Logger;
}

export interface ControlHandler {
  handle(message: ControlMessage, session: SessionHandle): void;
  sessionOpened(): void;
  sessionClosed(): void;
  /** Sends a resync Hello that was held back by the rate limit (maintenance tick). */
  retryResync(session: SessionHandle): Promise<void>;
  /** Resolves when every message received so far has been processed. */
  idle(): Promise<void>;
}

const RESYNC_MIN_INTERVAL_MS = 5_000;

/**
 * What a Hello tells the control plane about this node besides the revision: the engines and the
 * WireGuard interfaces (clients need the interface key and port). Peer counts are left out: they
 * change with every user and are not worth a Hello.
 */
function announcement(hello: AgentMessage): string {
  if (hello.body?.$case !== "hello") return "";
  const h = hello.body.value;
  return JSON.stringify([h.engines, h.wireguardInterfaces.map((w) => [w.name, w.publicKey, w.listenPort])]);
}

export function createControlHandler(deps: ControlHandlerDeps): ControlHandler {
  const { applier, store, logger } = deps;
  const assembler = createSnapshotAssembler();
  let chain: Promise<void> = Promise.resolve();
  let lastResyncAt = Number.NEGATIVE_INFINITY;
  /** A resync was held back by the rate limit and is still owed. */
  let resyncOwed = false;
  /** What the control plane last heard from us in a Hello (see announcement). */
  let announced = "";

  const enqueue = (section: () => Promise<void>) => {
    chain = chain
      .then(section)
      .catch((error) => logger.error({ err: errorMessage(error) }, "control message failed"));
  };

  async function send(session: SessionHandle, message: AgentMessage): Promise<void> {
    try {
      await session.send(message);
    } catch (error) {
      // The next Hello carries the applied revision; a lost ack costs nothing.
      if (!(error instanceof NotConnectedError)) throw error;
    }
  }

  const ack = (session: SessionHandle, value: Ack) => send(session, { body: { $case: "ack", value } });

  async function resync(session: SessionHandle, reason: string): Promise<void> {
    assembler.reset();
    const now = deps.now();
    if (now - lastResyncAt < RESYNC_MIN_INTERVAL_MS) {
      logger.debug({ reason }, "resync already requested");
      resyncOwed = true;
      return;
    }
    lastResyncAt = now;
    resyncOwed = false;
    logger.warn(
      { reason, appliedRevision: String(store.state.revision) },
      "asking the collector for desired state again",
    );
    const hello = deps.hello();
    announced = announcement(hello);
    await send(session, hello);
  }

  /**
   * A node config can create WireGuard interfaces (the first snapshot after enrollment does) or change
   * them: the session's Hello predates them, so say it again. The collector answers a Hello on an
   * open session like a resync, which is nothing when the revision is current.
   */
  async function announceChanges(session: SessionHandle): Promise<void> {
    const hello = deps.hello();
    const current = announcement(hello);
    if (current === announced) return;
    announced = current;
    logger.info("engines or WireGuard interfaces changed; announcing them");
    await send(session, hello);
  }

  /** A thrown apply means nothing was persisted: retry through the collector, after a reconcile. */
  async function guarded(session: SessionHandle, what: string, apply: () => Promise<ApplyOutcome>) {
    try {
      return await deps.withEngines(apply);
    } catch (error) {
      logger.error({ err: errorMessage(error), what }, "applying desired state failed");
      applier.markDirty();
      lastResyncAt = Number.NEGATIVE_INFINITY;
      await resync(session, `${what} failed`);
      return null;
    }
  }

  async function onChunk(chunk: SnapshotChunk, session: SessionHandle) {
    const outcome = assembler.add(chunk);
    if (outcome.kind === "partial") return;
    if (outcome.kind === "broken") return resync(session, outcome.reason);
    const snapshot = outcome.snapshot;
    const result = await guarded(session, "snapshot", () => applier.applySnapshot(snapshot));
    if (!result) return;
    lastResyncAt = Number.NEGATIVE_INFINITY;
    resyncOwed = false;
    logger.info(
      { revision: String(snapshot.revision), users: snapshot.users.length, failures: result.failures.length },
      "snapshot applied",
    );
    await ack(session, { commandIds: [], appliedRevision: snapshot.revision, failures: result.failures });
    await announceChanges(session);
  }

  async function onDiff(diff: StateDiff, session: SessionHandle) {
    const applied = store.state.revision;
    if (diff.fromRevision !== applied) {
      if (diff.toRevision <= applied) return; // already covered by what we applied
      return resync(session, `diff from ${diff.fromRevision} does not start at ${applied}`);
    }
    const result = await guarded(session, "diff", () =>
      applier.applyDiff({
        toRevision: diff.toRevision,
        upserts: diff.upserts,
        removals: diff.removals,
        nodeConfig: diff.nodeConfig,
        usageCountedThroughSeq: diff.usageCountedThroughSeq,
      }),
    );
    if (!result) return;
    lastResyncAt = Number.NEGATIVE_INFINITY;
    await ack(session, { commandIds: [], appliedRevision: diff.toRevision, failures: result.failures });
    if (diff.nodeConfig) await announceChanges(session);
  }

  async function onCommand(command: Command, session: SessionHandle) {
    const applied = store.state.revision;
    if (command.revision <= applied) {
      // Re-sent after a reconnect, and already part of the state we applied.
      return ack(session, { commandIds: [command.id], appliedRevision: 0n, failures: [] });
    }
    if (command.revision !== applied + 1n)
      return resync(session, `command ${command.id} moves to ${command.revision}, applied is ${applied}`);
    const result = await guarded(session, "command", () => applier.applyCommand(command));
    if (!result) return;
    await ack(session, {
      commandIds: [command.id],
      appliedRevision: command.revision,
      failures: result.failures,
    });
  }

  async function onLeaseUpdate(update: LeaseUpdate) {
    for (const grant of update.leases)
      deps.leases.grant(grant.userId, leaseFromProto(grant.lease, update.usageCountedThroughSeq));
    await deps.enforceLeases();
  }

  return {
    handle(message, session) {
      const body = message.body;
      switch (body?.$case) {
        case "usageAck": {
          const seq = Number(body.value.seq);
          deps.usage.ack(seq).then(
            () => deps.onAck?.(seq),
            (error) => logger.error({ err: errorMessage(error), seq }, "recording a usage ack failed"),
          );
          return;
        }
        case "policy":
          return enqueue(() => deps.onPolicy(body.value));
        case "snapshot":
          return enqueue(() => onChunk(body.value, session));
        case "diff":
          return enqueue(() => onDiff(body.value, session));
        case "command":
          return enqueue(() => onCommand(body.value, session));
        case "leaseUpdate":
          return enqueue(() => onLeaseUpdate(body.value));
        default:
          // A newer collector's message this agent does not know: ignore it (proto compatibility rule).
          return;
      }
    },
    sessionOpened() {
      assembler.reset();
      lastResyncAt = Number.NEGATIVE_INFINITY;
      resyncOwed = false; // the new session's Hello already asked
      announced = announcement(deps.hello()); // and told what the engines are now
    },
    retryResync(session) {
      if (!resyncOwed) return Promise.resolve();
      return new Promise((resolve) => enqueue(() => resync(session, "held-back resync").finally(resolve)));
    },
    sessionClosed() {
      // Chunks of a snapshot never continue on another stream.
      enqueue(async () => assembler.reset());
    },
    idle: async () => {
      let seen: Promise<void>;
      do {
        seen = chain;
        await seen;
      } while (seen !== chain);
    },
  };
}
