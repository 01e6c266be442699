import type { Logger } from "@vpnpanel/common";
import {
  collectorChannel,
  NODE_EVENTS_CHANNEL,
  type NodeBus,
  type NodeEvent,
  nodeSessionKey,
} from "@vpnpanel/control";
import type { Cache } from "@vpnpanel/coord";

// Which collector holds which node's stream, and delivery of "look again" notifications to it.
//
// - Local sessions are in a map; a notification for one of them is handled in-process at once (the
//   enforcement path after an ingest commit never waits for pub/sub).
// - The registry is a cache key per node (nodeSessionKey → collector id) with a TTL, refreshed while
//   the session lives. A notification for a node held elsewhere is published on that collector's own
//   channel; for a node nobody holds it is dropped: the node gets the change when it reconnects.
// - Broadcasts on NODE_EVENTS_CHANNEL (from the API: node edits, revocations, policy) reach every
//   collector; each acts on the nodes it holds and ignores the rest.

export interface SessionHandle {
  readonly nodeId: string;
  readonly serialHex: string;
  /** Push desired-state changes the agent has not been sent yet. */
  push(enforcement?: Record<string, number>): void;
  pushLeases(subscriptionIds: string[]): void;
  sendPolicy(): void;
  close(reason: "revoked" | "superseded" | "draining", message: string): void;
  /** Stop reading from the agent (shutdown: what is in flight still commits and is acked). */
  quiesce(): void;
}

const REGISTRY_TTL_SECONDS = 60;

export function createHub(deps: { collectorId: string; cache: Cache; bus: NodeBus; log: Logger }) {
  const { collectorId, cache, bus, log } = deps;
  const sessions = new Map<string, SessionHandle>();
  const unsubscribe: Array<() => Promise<void>> = [];

  function handleLocal(event: NodeEvent) {
    for (const nodeId of event.nodeIds) {
      const s = sessions.get(nodeId);
      if (!s) continue;
      switch (event.type) {
        case "changed":
          s.push(event.enforcement);
          break;
        case "revoked":
          s.close("revoked", "the node's certificate was revoked or the node was deleted");
          break;
        case "policy":
          s.sendPolicy();
          break;
        case "leases":
          s.pushLeases(event.subscriptionIds);
          break;
        case "superseded":
          if (event.by !== collectorId)
            s.close("superseded", "a newer session for this node started elsewhere");
          break;
      }
    }
  }

  return {
    collectorId,
    sessions,

    async start() {
      unsubscribe.push(await bus.subscribe(NODE_EVENTS_CHANNEL, handleLocal));
      unsubscribe.push(await bus.subscribe(collectorChannel(collectorId), handleLocal));
    },

    async stop() {
      for (const u of unsubscribe.splice(0)) await u().catch(() => {});
    },

    /** A new authenticated session. An older one for the node, here or elsewhere, is closed. */
    async register(session: SessionHandle) {
      const previous = sessions.get(session.nodeId);
      sessions.set(session.nodeId, session);
      if (previous && previous !== session)
        previous.close("superseded", "a newer session for this node started");
      const key = nodeSessionKey(session.nodeId);
      const owner = await cache.get(key).catch(() => null);
      await cache.set(key, collectorId, REGISTRY_TTL_SECONDS).catch(() => {});
      if (owner && owner !== collectorId) {
        await bus
          .publish(
            { type: "superseded", nodeIds: [session.nodeId], by: collectorId },
            collectorChannel(owner),
          )
          .catch(() => {});
      }
    },

    async unregister(session: SessionHandle) {
      if (sessions.get(session.nodeId) !== session) return;
      sessions.delete(session.nodeId);
      const key = nodeSessionKey(session.nodeId);
      if ((await cache.get(key).catch(() => null)) === collectorId) await cache.del(key).catch(() => {});
    },

    async refreshRegistry() {
      for (const nodeId of sessions.keys()) {
        await cache.set(nodeSessionKey(nodeId), collectorId, REGISTRY_TTL_SECONDS).catch(() => {});
      }
    },

    /**
     * Routes an event to whoever holds each node: this collector directly, another one through its
     * channel; nodes nobody holds are skipped.
     */
    async dispatch(event: NodeEvent) {
      const local: string[] = [];
      const remote = new Map<string, string[]>();
      for (const nodeId of event.nodeIds) {
        if (sessions.has(nodeId)) {
          local.push(nodeId);
          continue;
        }
        const owner = await cache.get(nodeSessionKey(nodeId)).catch(() => null);
        if (!owner || owner === collectorId) continue;
        const list = remote.get(owner);
        if (list) list.push(nodeId);
        else remote.set(owner, [nodeId]);
      }
      if (local.length) handleLocal({ ...event, nodeIds: local } as NodeEvent);
      for (const [owner, nodeIds] of remote) {
        await bus.publish({ ...event, nodeIds } as NodeEvent, collectorChannel(owner)).catch((err) => {
          log.warn({ err, owner }, "could not route a node event to its collector");
        });
      }
    },
  };
}

export type Hub = ReturnType<typeof createHub>;
