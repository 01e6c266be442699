// The WireGuard device state and every change to it: which interfaces exist, which peers they hold
// (learnt from dumps, kept current after each command) and which user owns each key. The driver
// wraps it with locking, events and the EngineDriver surface.

import type { Logger } from "pino";
import { errorMessage, groupBy } from "../async-utils";
import { type AgentUser, type ApplyResult, emptyApplyResult, type UsageReading } from "../types";
import { ensureInterface, type InterfaceState, type WireguardMode } from "./interfaces";
import { applyRoutes, finalReadings, readDump, removePeers, upsertPeers } from "./peer-apply";
import { type DesiredPeer, type DevicePeer, desiredPeerFor, type PeerRemoval, planPeers } from "./peer-diff";
import {
  type Cidr,
  canonicalAllowedIps,
  extraRoutes,
  formatCidr,
  type PlacementConfig,
  parseCidr,
  slotRoutes,
} from "./placement";
import type { CommandRunner } from "./runner";

/** wireguard-go's per-device cap (MaxPeers = 1 << 16, research/limits.md §4). */
export const WIREGUARD_GO_MAX_PEERS = 65_536;

export interface SyncConfig {
  interfacePrefix: string;
  listenPort: number;
  addresses: readonly string[];
  mtu?: number;
}

export interface PeerSyncContext {
  runner: CommandRunner;
  logger: Logger;
  stateDir: string;
  keyFile: string;
  mode: WireguardMode;
  base: SyncConfig;
  placement: PlacementConfig;
}

export type IfaceEntry = InterfaceState & { listenPort: number };

export function createPeerSync(ctx: PeerSyncContext) {
  const { runner, logger, base, placement } = ctx;
  const ifaces = new Map<number, IfaceEntry>();
  const device = new Map<string, DevicePeer>();
  const userKeys = new Map<string, string>();
  let lastError: string | null = null;

  const nameOf = (index: number) => `${base.interfacePrefix}${index}`;
  const covered = (index: number): Cidr[] =>
    index === 0
      ? base.addresses.map((a) => parseCidr(a)).filter((c): c is Cidr => c !== null)
      : slotRoutes(placement, index);

  async function ensureIface(index: number): Promise<InterfaceState & { listenPort: number }> {
    const existing = ifaces.get(index);
    if (existing) return existing;
    const cfg = base;
    const listenPort = cfg.listenPort + index;
    const state = await ensureInterface(
      runner,
      {
        name: nameOf(index),
        listenPort,
        privateKeyFile: ctx.keyFile,
        addresses: index === 0 ? cfg.addresses : [],
        routes: slotRoutes(placement, index).map(formatCidr),
        ...(cfg.mtu ? { mtu: cfg.mtu } : {}),
      },
      ctx.mode,
      logger,
    );
    const entry = { ...state, listenPort };
    ifaces.set(index, entry);
    return entry;
  }

  /** Rebuilds the device map from dumps, keeping the user ids already known for each key. */
  async function resync(): Promise<void> {
    const owners = new Map([...userKeys].map(([user, key]) => [key, user]));
    device.clear();
    for (const [index, iface] of ifaces) {
      for (const peer of (await readDump(runner, iface.name)).peers) {
        device.set(peer.publicKey, {
          publicKey: peer.publicKey,
          presharedKey: peer.presharedKey,
          allowedIps: canonicalAllowedIps(peer.allowedIps),
          index,
          userId: owners.get(peer.publicKey) ?? null,
        });
      }
    }
  }

  /** Final readings first, then removal of the peers and of their extra routes. */
  async function removeFrom(
    index: number,
    removals: readonly PeerRemoval[],
    result: ApplyResult,
  ): Promise<void> {
    const iface = ifaces.get(index);
    if (!iface) return;
    const owners = new Map(removals.flatMap((r) => (r.userId ? [[r.publicKey, r.userId] as const] : [])));
    result.final.push(...(await finalReadings(runner, iface.name, iface.generation, owners)));
    await removePeers(
      runner,
      iface.name,
      removals.map((r) => r.publicKey),
    );
    const routes = removals.flatMap((r) =>
      extraRoutes(covered(index), device.get(r.publicKey)?.allowedIps ?? []),
    );
    await applyRoutes(runner, "del", iface.name, routes);
    for (const r of removals) {
      device.delete(r.publicKey);
      if (r.userId && userKeys.get(r.userId) === r.publicKey) userKeys.delete(r.userId);
    }
  }

  /**
   * The user's peer as the device already holds it, when the user asks for exactly that (same key,
   * PSK and allowed-ips text, owned by this user): it was validated and placed when it was applied, so
   * it is reused without parsing again. This keeps an unchanged 100k-peer snapshot well under a
   * second. Peers adopted from a dump have no owner until a first full pass has placed them.
   */
  function heldAsIs(user: AgentUser): DesiredPeer | null {
    const wg = user.wireguard;
    const current = wg ? device.get(wg.publicKey) : undefined;
    if (!wg || !current || current.userId !== user.id) return null;
    if ((wg.presharedKey ?? null) !== current.presharedKey) return null;
    const ips = current.allowedIps;
    if (wg.allowedIps.length !== ips.length || wg.allowedIps.some((ip, i) => ip !== ips[i])) return null;
    return {
      userId: user.id,
      publicKey: current.publicKey,
      presharedKey: current.presharedKey,
      allowedIps: ips,
      index: current.index,
    };
  }

  async function apply(users: readonly AgentUser[], mode: "snapshot" | "upsert"): Promise<ApplyResult> {
    const result: ApplyResult = emptyApplyResult();
    const desired: DesiredPeer[] = [];
    for (const user of users) {
      const d = heldAsIs(user) ?? desiredPeerFor(user, placement);
      if (d && "error" in d) result.failed.push(d);
      else if (d) desired.push(d);
    }
    const plan = planPeers(device, userKeys, desired, mode);
    result.failed.push(...plan.conflicts);
    const conflicted = new Set(plan.conflicts.map((c) => c.userId));
    try {
      for (const [index, removals] of groupBy(plan.remove, (r) => r.index)) {
        await removeFrom(index, removals, result);
      }
      const clearPsk = new Set(plan.clearPsk.map((p) => p.publicKey));
      for (const [index, peers] of groupBy(plan.upsert, (p) => p.index)) {
        const current = [...device.values()].filter((p) => p.index === index).length;
        const fresh = peers.filter((p) => device.get(p.publicKey)?.index !== index).length;
        if (current + fresh > WIREGUARD_GO_MAX_PEERS) {
          for (const p of peers)
            result.failed.push({ userId: p.userId, error: `interface ${index} is full` });
          continue;
        }
        const iface = await ensureIface(index);
        await upsertPeers(
          runner,
          iface.name,
          ctx.stateDir,
          peers,
          peers.filter((p) => clearPsk.has(p.publicKey)).map((p) => p.publicKey),
        );
        const routes = peers.flatMap((p) => extraRoutes(covered(index), p.allowedIps));
        await applyRoutes(runner, "replace", iface.name, routes);
        for (const p of peers) {
          device.set(p.publicKey, { ...p });
          userKeys.set(p.userId, p.publicKey);
        }
      }
    } catch (error) {
      // The device may hold part of the batch: re-read it so the next apply diffs against the truth.
      lastError = errorMessage(error);
      logger.error({ err: lastError }, "applying peers failed");
      const failedIds = new Set(result.failed.map((f) => f.userId));
      for (const d of desired) {
        if (!failedIds.has(d.userId)) result.failed.push({ userId: d.userId, error: lastError });
      }
      await resync().catch(() => undefined);
      return result;
    }
    for (const d of desired) {
      if (conflicted.has(d.userId)) continue;
      userKeys.set(d.userId, d.publicKey);
      const peer = device.get(d.publicKey);
      if (peer) peer.userId = d.userId;
    }
    result.added = plan.added;
    result.updated = plan.updated;
    result.removed = plan.removed;
    result.unchanged = plan.unchanged.length;
    return result;
  }

  async function recover(index: number): Promise<{ generation: string; reapplied: number }> {
    // The device vanished (wireguard-go died, someone deleted it): re-create it with the same peers.
    const peers = [...device.values()].filter((p) => p.index === index);
    ifaces.delete(index);
    const iface = await ensureIface(index);
    await upsertPeers(runner, iface.name, ctx.stateDir, peers, []);
    await applyRoutes(
      runner,
      "replace",
      iface.name,
      peers.flatMap((p) => extraRoutes(covered(index), p.allowedIps)),
    );
    logger.warn({ iface: iface.name, peers: peers.length }, "interface re-created");
    return { generation: iface.generation, reapplied: peers.length };
  }

  async function removeUsers(ids: readonly string[]): Promise<ApplyResult> {
    const result = emptyApplyResult();
    const targets: PeerRemoval[] = [];
    for (const userId of ids) {
      const peer = device.get(userKeys.get(userId) ?? "");
      if (peer) targets.push({ publicKey: peer.publicKey, index: peer.index, userId });
    }
    for (const [index, removals] of groupBy(targets, (t) => t.index)) {
      try {
        await removeFrom(index, removals, result);
        result.removed.push(...removals.map((r) => r.userId as string));
      } catch (error) {
        lastError = errorMessage(error);
        for (const r of removals) result.failed.push({ userId: r.userId as string, error: lastError });
      }
    }
    return result;
  }

  /** Readings of known users per interface; an interface that vanished is reported in `missing`. */
  async function readings(): Promise<{ readings: UsageReading[]; missing: number[] }> {
    const out: UsageReading[] = [];
    const missing: number[] = [];
    const owners = new Map([...userKeys].map(([user, key]) => [key, user]));
    for (const [index, iface] of [...ifaces]) {
      let dump: Awaited<ReturnType<typeof readDump>>;
      try {
        dump = await readDump(runner, iface.name);
      } catch (error) {
        if (!/No such device|Unable to access interface/i.test(errorMessage(error))) throw error;
        missing.push(index);
        continue;
      }
      for (const peer of dump.peers) {
        const userId = owners.get(peer.publicKey);
        if (userId !== undefined)
          out.push({ userId, up: peer.rx, down: peer.tx, generation: iface.generation });
      }
    }
    return { readings: out, missing };
  }

  function clear(): void {
    ifaces.clear();
    device.clear();
    userKeys.clear();
  }

  return {
    ifaces: ifaces as ReadonlyMap<number, IfaceEntry>,
    peerCount: () => device.size,
    userCount: () => userKeys.size,
    peersPerInterface: () => {
      const out = new Map<number, number>();
      for (const p of device.values()) out.set(p.index, (out.get(p.index) ?? 0) + 1);
      return out;
    },
    lastError: () => lastError,
    ensureIface,
    resync,
    apply,
    removeUsers,
    recover,
    readings,
    clear,
  };
}

export type PeerSync = ReturnType<typeof createPeerSync>;
