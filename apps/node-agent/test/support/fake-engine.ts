// Fake engine drivers for the agent tests: they implement EngineDriver exactly as the contract in
// engines/types.ts states it (registry diffing, final readings that reset the counter, counters that
// are never reset by a read, a generation per core life), with deterministic counters the test moves.
// The real drivers are proven against real cores in test/e2e; here the subject is the agent.

import { Engine, type NodeConfig } from "@vpnpanel/proto";
import type { EngineSlot } from "../../src/engine-slots";
import { createListeners } from "../../src/engines/async-utils";
import {
  type AgentUser,
  type ApplyResult,
  type EngineDriver,
  type EngineEvents,
  type EngineKind,
  emptyApplyResult,
  type UsageReading,
} from "../../src/engines/types";
import { diffUsers } from "../../src/engines/user-diff";

export interface FakeEngine {
  kind: EngineKind;
  driver: EngineDriver<unknown>;
  slot: EngineSlot;
  /** Users currently in the engine. */
  users(): string[];
  user(id: string): AgentUser | undefined;
  /** Adds traffic to a user's absolute counters. */
  traffic(id: string, up: number, down: number): void;
  /** The core's own counters (what an exact accounting must add up to, per user, per core life). */
  counters(): Map<string, { up: number; down: number }>;
  /** Simulates a core crash + restart: counters restart from zero under a new generation. */
  crash(): void;
  log: {
    starts: number;
    stops: number;
    bases: unknown[];
    /** Users a start brought up from its config (Xray-like engines only). */
    preloaded: string[];
    added: string[];
    updated: string[];
    removed: string[];
    calls: string[];
  };
  /** Everything ever counted by this engine, per user, across core lives (ground truth). */
  lifetime(): Map<string, { up: number; down: number }>;
}

const fingerprintOf = (kind: EngineKind) => (user: AgentUser) => {
  const creds = kind === "xray" ? user.xray : user.wireguard;
  return creds ? JSON.stringify(creds) : null;
};

/**
 * `keepsUsersOnStart`: WireGuard-like (interfaces, peers and counters survive a driver stop/start);
 * otherwise Xray-like (a start is a new core: empty, new generation).
 */
export function createFakeEngine(
  kind: EngineKind,
  options: { keepsUsersOnStart?: boolean } = {},
): FakeEngine {
  const registry = new Map<string, { user: AgentUser; print: string }>();
  const counters = new Map<string, { up: number; down: number }>();
  const lifetime = new Map<string, { up: number; down: number }>();
  const events = createListeners<EngineEvents>();
  const print = fingerprintOf(kind);
  let generation = 0;
  let running = false;
  const log: FakeEngine["log"] = {
    starts: 0,
    stops: 0,
    bases: [],
    preloaded: [],
    added: [],
    updated: [],
    removed: [],
    calls: [],
  };

  const gen = () => `${kind}-gen-${generation}`;

  function finalOf(id: string): UsageReading {
    const c = counters.get(id) ?? { up: 0, down: 0 };
    counters.delete(id);
    return { userId: id, up: c.up, down: c.down, generation: gen() };
  }

  function applyDiff(desired: readonly AgentUser[], removeMissing: boolean): ApplyResult {
    const result = emptyApplyResult();
    const diff = diffUsers(new Map([...registry].map(([id, u]) => [id, u.print])), desired, print);
    result.unchanged = diff.unchanged;
    if (removeMissing) {
      for (const id of diff.toRemove) {
        result.final.push(finalOf(id));
        registry.delete(id);
        result.removed.push(id);
        log.removed.push(id);
      }
    }
    for (const user of diff.toAdd) {
      registry.set(user.id, { user, print: print(user) as string });
      result.added.push(user.id);
      log.added.push(user.id);
    }
    for (const user of diff.toUpdate) {
      // Like Xray: same email, same core — the counter stays, no final reading.
      registry.set(user.id, { user, print: print(user) as string });
      result.updated.push(user.id);
      log.updated.push(user.id);
    }
    return result;
  }

  const driver: EngineDriver<unknown> = {
    kind,
    async start(base, preload = []) {
      log.starts++;
      log.bases.push(base);
      if (!options.keepsUsersOnStart || generation === 0) {
        registry.clear();
        counters.clear();
        generation++;
      }
      // Like the Xray driver: a fresh core comes up holding the users written into its config.
      if (!options.keepsUsersOnStart) {
        for (const user of preload) {
          const p = print(user);
          if (p === null) continue;
          registry.set(user.id, { user, print: p });
          log.preloaded.push(user.id);
        }
      }
      running = true;
    },
    async stop() {
      log.stops++;
      running = false;
    },
    async applySnapshot(users) {
      log.calls.push(`snapshot:${users.length}`);
      return applyDiff(users, true);
    },
    async addUsers(users) {
      log.calls.push(`add:${users.map((u) => u.id).join(",")}`);
      return applyDiff(users, false);
    },
    async removeUsers(ids) {
      log.calls.push(`remove:${ids.join(",")}`);
      const result = emptyApplyResult();
      for (const id of ids) {
        if (!registry.has(id)) continue;
        result.final.push(finalOf(id));
        registry.delete(id);
        result.removed.push(id);
        log.removed.push(id);
      }
      return result;
    },
    async readUsage() {
      if (!running) throw new Error(`${kind} is not running`);
      return [...registry.keys()].map((id) => {
        const c = counters.get(id) ?? { up: 0, down: 0 };
        return { userId: id, up: c.up, down: c.down, generation: gen() };
      });
    },
    status: () => ({
      engine: kind,
      running,
      generation: running ? gen() : null,
      users: registry.size,
      restarts: 0,
      lastError: null,
      details: {},
    }),
    on: (event, listener) => events.on(event, listener),
  };

  const slot: EngineSlot = {
    kind,
    driver,
    baseConfig(node: NodeConfig) {
      if (kind === "xray")
        return node.xrayInboundsJson ? { inbounds: JSON.parse(node.xrayInboundsJson) } : null;
      const first = node.wireguardInterfaces[0];
      return first ? { listenPort: first.listenPort, addresses: first.addresses } : null;
    },
    init: async () => undefined,
    capability: () => ({
      engine: kind === "xray" ? Engine.XRAY : Engine.WIREGUARD,
      core: kind === "xray" ? "xray" : "wireguard-go",
      version: "0.0.0-fake",
      features: kind === "xray" ? ["xtls_flow"] : [],
    }),
    wireguardInterfaces: () =>
      kind === "wireguard" && running
        ? [{ name: "wg0", publicKey: "fake-public-key", listenPort: 51820, peerCount: registry.size }]
        : [],
    shutdown: () => driver.stop(),
  };

  return {
    kind,
    driver,
    slot,
    users: () => [...registry.keys()].sort(),
    user: (id) => registry.get(id)?.user,
    traffic(id, up, down) {
      if (!registry.has(id)) throw new Error(`${id} is not in the ${kind} engine`);
      const c = counters.get(id) ?? { up: 0, down: 0 };
      c.up += up;
      c.down += down;
      counters.set(id, c);
      const l = lifetime.get(id) ?? { up: 0, down: 0 };
      l.up += up;
      l.down += down;
      lifetime.set(id, l);
    },
    counters: () => new Map([...counters].map(([id, c]) => [id, { ...c }])),
    crash() {
      counters.clear();
      generation++;
      events.emit("restarted", { engine: kind, generation: gen(), reapplied: registry.size, failed: [] });
    },
    log,
    lifetime: () => new Map([...lifetime].map(([id, c]) => [id, { ...c }])),
  };
}
