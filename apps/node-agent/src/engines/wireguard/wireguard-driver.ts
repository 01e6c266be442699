// EngineDriver for WireGuard over `wg` / `ip`. The interfaces themselves are the source of truth: at
// start they are adopted and dumped, so an agent restart neither drops sessions nor loses track of
// peers. Peer changes are planned as a diff (peer-diff.ts) and applied in bulk per interface
// (peer-sync.ts); placement across interfaces follows the address slot rule in placement.ts.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { createListeners, createSerialLock, errorMessage } from "../async-utils";
import type { EngineDriver, EngineEvents } from "../types";
import { deleteInterface, listLinks, type WireguardMode } from "./interfaces";
import { ensurePrivateKeyFile } from "./keys";
import { createPeerSync, type PeerSync, WIREGUARD_GO_MAX_PEERS } from "./peer-sync";
import { parseCidr } from "./placement";
import { type CommandRunner, createRunner } from "./runner";

export { WIREGUARD_GO_MAX_PEERS } from "./peer-sync";

export interface WireguardBaseConfig {
  /** Interfaces are `${prefix}0`, `${prefix}1`, …; interface k listens on listenPort + k. */
  interfacePrefix: string;
  listenPort: number;
  /** Node addresses with prefix, set on interface 0, e.g. ["10.8.0.1/16"]. */
  addresses: string[];
  /** IPv4 pool used for placement; default: the network of the first IPv4 address. */
  pool?: string;
  /** Default 50,000; at most 65,536 (wireguard-go's per-device cap). */
  peersPerInterface?: number;
  maxInterfaces?: number;
  mtu?: number;
}

export interface WireguardDriverOptions {
  stateDir: string;
  logger: Logger;
  runner?: CommandRunner;
  mode?: WireguardMode;
}

export interface WireguardDriver extends EngineDriver<WireguardBaseConfig> {
  publicKey(): string | null;
  interfaces(): Array<{ name: string; index: number; listenPort: number; mode: string; peers: number }>;
  /** Deletes every interface of this driver (decommissioning, tests); stop() leaves them running. */
  destroy(): Promise<void>;
}

export function createWireguardDriver(options: WireguardDriverOptions): WireguardDriver {
  const runner = options.runner ?? createRunner();
  const logger = options.logger.child({
    engine: "wireguard",
    ...(runner.netns ? { netns: runner.netns } : {}),
  });
  const events = createListeners<EngineEvents>((error) =>
    logger.error({ err: errorMessage(error) }, "listener"),
  );
  const exclusive = createSerialLock();
  const keyFile = join(options.stateDir, "wg-private.key");
  let sync: PeerSync | null = null;
  let publicKey: string | null = null;
  let restarts = 0;

  const started = (): PeerSync => {
    if (!sync) throw new Error("wireguard driver is not started");
    return sync;
  };

  return {
    kind: "wireguard",
    async start(config) {
      const pool = parseCidr(config.pool ?? config.addresses.find((a) => parseCidr(a)?.family === 4) ?? "");
      if (!pool || pool.family !== 4)
        throw new Error("wireguard: an IPv4 pool (or IPv4 address) is required");
      const perInterface = config.peersPerInterface ?? 50_000;
      if (perInterface < 1 || perInterface > WIREGUARD_GO_MAX_PEERS) {
        throw new Error(`wireguard: peersPerInterface must be 1..${WIREGUARD_GO_MAX_PEERS}`);
      }
      const placement = { pool, peersPerInterface: perInterface, maxInterfaces: config.maxInterfaces ?? 16 };
      await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
      publicKey = (await ensurePrivateKeyFile(keyFile)).publicKey;
      const s = createPeerSync({
        runner,
        logger,
        stateDir: options.stateDir,
        keyFile,
        mode: options.mode ?? "auto",
        base: config,
        placement,
      });
      // Adopt every interface of ours that already exists, plus interface 0.
      const pattern = new RegExp(`^${config.interfacePrefix.replace(/[^A-Za-z0-9]/g, "\\$&")}(\\d+)$`);
      const indices = new Set([0]);
      for (const name of (await listLinks(runner)).keys()) {
        const m = name.match(pattern);
        if (m?.[1] && Number(m[1]) < placement.maxInterfaces) indices.add(Number(m[1]));
      }
      for (const index of [...indices].sort((a, b) => a - b)) await s.ensureIface(index);
      await s.resync();
      sync = s;
      logger.info({ interfaces: s.ifaces.size, adoptedPeers: s.peerCount() }, "wireguard started");
    },
    async stop() {
      // Interfaces keep serving while the agent is down; they are adopted on the next start.
    },
    destroy: () =>
      exclusive(async () => {
        for (const iface of sync?.ifaces.values() ?? []) await deleteInterface(runner, iface.name);
        sync?.clear();
      }),
    applySnapshot: (users) => exclusive(() => started().apply(users, "snapshot")),
    addUsers: (users) => exclusive(() => started().apply(users, "upsert")),
    removeUsers: (ids) => exclusive(() => started().removeUsers(ids)),
    async readUsage() {
      const { readings, missing } = await started().readings();
      for (const index of missing) {
        // The device vanished (wireguard-go died, someone deleted it): re-create it with its peers.
        // Their counters start from zero under a new generation, which the next reading reports.
        const { generation, reapplied } = await exclusive(() => started().recover(index));
        restarts++;
        events.emit("restarted", { engine: "wireguard", generation, reapplied, failed: [] });
      }
      return readings;
    },
    status() {
      const perIface = sync?.peersPerInterface() ?? new Map<number, number>();
      const ifaces = [...(sync?.ifaces ?? [])];
      return {
        engine: "wireguard",
        running: ifaces.length > 0,
        generation: sync?.ifaces.get(0)?.generation ?? null,
        users: sync?.userCount() ?? 0,
        restarts,
        lastError: sync?.lastError() ?? null,
        details: {
          publicKey: publicKey ?? "",
          interfaces: ifaces.length,
          peers: sync?.peerCount() ?? 0,
          mode: sync?.ifaces.get(0)?.mode ?? "none",
          ...Object.fromEntries(ifaces.map(([i, f]) => [`peers_${f.name}`, perIface.get(i) ?? 0])),
        },
      };
    },
    on: (event, listener) => events.on(event, listener),
    publicKey: () => publicKey,
    interfaces: () => {
      const perIface = sync?.peersPerInterface() ?? new Map<number, number>();
      return [...(sync?.ifaces ?? [])].map(([index, f]) => ({
        name: f.name,
        index,
        listenPort: f.listenPort,
        mode: f.mode,
        peers: perIface.get(index) ?? 0,
      }));
    },
  };
}
