import type { PubSub } from "@vpnpanel/coord";

// Notifications between the roles about nodes, published after the transaction that caused them has
// committed. They carry no state, only "look again": a lost message delays a change until the
// collector's periodic check, it never loses one (the database is the source of truth).
//
// - NODE_EVENTS_CHANNEL: broadcast to every collector; each acts only on the nodes whose session it holds.
// - collectorChannel(id): one collector's own channel, for changes routed to the collector that holds
//   the node's stream (the registry key nodeSessionKey(nodeId) names it).
// - OUTBOX_NUDGE_CHANNEL: "the outbox has new events"; the node consumer polls anyway, a nudge only
//   shortens the wait. Lifecycle services may publish it after commit.

export const NODE_EVENTS_CHANNEL = "nodes.events";
export const OUTBOX_NUDGE_CHANNEL = "outbox.nudge";
export const collectorChannel = (collectorId: string) => `collector.${collectorId}`;
export const nodeSessionKey = (nodeId: string) => `node-session:${nodeId}`;

export type NodeEvent =
  /** Desired state (or config) of these nodes changed: push what their agents have not seen. */
  | { type: "changed"; nodeIds: string[]; enforcement?: Record<string, number> }
  /** Certificates revoked or nodes deleted: close their sessions. */
  | { type: "revoked"; nodeIds: string[] }
  /** The policy document changed: send a fresh Policy. */
  | { type: "policy"; nodeIds: string[] }
  /** Leases (byte budget, expiry) of these subscriptions changed; no revision change. */
  | { type: "leases"; nodeIds: string[]; subscriptionIds: string[] }
  /** A newer session for this node started on another collector. */
  | { type: "superseded"; nodeIds: string[]; by: string };

export interface NodeBus {
  publish(event: NodeEvent, channel?: string): Promise<void>;
  subscribe(channel: string, handler: (event: NodeEvent) => void): Promise<() => Promise<void>>;
}

export function createNodeBus(pubsub: PubSub): NodeBus {
  return {
    async publish(event, channel = NODE_EVENTS_CHANNEL) {
      if ("nodeIds" in event && event.nodeIds.length === 0) return;
      await pubsub.publish(channel, JSON.stringify(event));
    },
    subscribe(channel, handler) {
      return pubsub.subscribe(channel, (message) => {
        let event: NodeEvent;
        try {
          event = JSON.parse(message) as NodeEvent;
        } catch {
          return;
        }
        handler(event);
      });
    },
  };
}
