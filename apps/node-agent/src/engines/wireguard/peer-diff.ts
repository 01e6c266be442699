import type { AgentUser, UserFailure } from "../types";
import { validateUserId } from "../user-diff";
import { isWireguardKey } from "./keys";
import { canonicalCidrs, interfaceIndexForCidrs, type PlacementConfig, parseCidr } from "./placement";

// Plans peer changes from the device state (what the interfaces hold, learnt from dumps at start and
// kept current after each command) and the desired users. Pure, so the tricky cases — a key change,
// a peer whose address moved it to another interface, a PSK that must be cleared — are unit-tested.

export interface DevicePeer {
  publicKey: string;
  presharedKey: string | null;
  /** Canonical (see canonicalAllowedIps). */
  allowedIps: string[];
  index: number;
  /** Null for a peer adopted from an interface before any snapshot named its user. */
  userId: string | null;
}

export interface DesiredPeer {
  userId: string;
  publicKey: string;
  presharedKey: string | null;
  allowedIps: string[];
  index: number;
}

export interface PeerRemoval {
  publicKey: string;
  index: number;
  /** Whose final reading this is (null: unknown owner, nothing to attribute). */
  userId: string | null;
}

export interface PeerPlan {
  upsert: DesiredPeer[];
  /** Peers that keep their key but must lose their PSK (addconf cannot clear one). */
  clearPsk: DesiredPeer[];
  /** Removed before the upserts, each after a final reading. */
  remove: PeerRemoval[];
  added: string[];
  updated: string[];
  removed: string[];
  unchanged: string[];
  conflicts: Array<{ userId: string; error: string }>;
}

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * `snapshot` removes every device peer not desired; `upsert` only touches the given users (and the
 * old key of a user whose key changed).
 */
export function planPeers(
  device: ReadonlyMap<string, DevicePeer>,
  userKeys: ReadonlyMap<string, string>,
  desired: readonly DesiredPeer[],
  mode: "snapshot" | "upsert",
): PeerPlan {
  const plan: PeerPlan = {
    upsert: [],
    clearPsk: [],
    remove: [],
    added: [],
    updated: [],
    removed: [],
    unchanged: [],
    conflicts: [],
  };
  const byKey = new Map<string, DesiredPeer>();
  const byUser = new Map<string, DesiredPeer>();
  for (const peer of desired) {
    const owner = byKey.get(peer.publicKey);
    if (owner && owner.userId !== peer.userId) {
      plan.conflicts.push({ userId: peer.userId, error: `public key already used by ${owner.userId}` });
      continue;
    }
    const previous = byUser.get(peer.userId);
    if (previous) byKey.delete(previous.publicKey);
    byKey.set(peer.publicKey, peer);
    byUser.set(peer.userId, peer);
  }
  const removing = new Set<string>();
  const removeKey = (publicKey: string, userId: string | null) => {
    const current = device.get(publicKey);
    if (!current || removing.has(publicKey)) return;
    removing.add(publicKey);
    plan.remove.push({ publicKey, index: current.index, userId });
  };

  for (const peer of byKey.values()) {
    const oldKey = userKeys.get(peer.userId);
    const keyChanged = oldKey !== undefined && oldKey !== peer.publicKey && !byKey.has(oldKey);
    if (keyChanged) removeKey(oldKey, peer.userId);
    const current = device.get(peer.publicKey);
    if (!current) {
      plan.upsert.push(peer);
      (keyChanged ? plan.updated : plan.added).push(peer.userId);
      continue;
    }
    if (current.index !== peer.index) {
      // Interfaces have separate peer tables: moving means remove (final reading) + add.
      removeKey(peer.publicKey, current.userId ?? peer.userId);
      plan.upsert.push(peer);
      plan.updated.push(peer.userId);
      continue;
    }
    const pskChanged = current.presharedKey !== peer.presharedKey;
    if (pskChanged || !same(current.allowedIps, peer.allowedIps)) {
      // Same interface, same key: addconf updates in place and the counters keep running.
      plan.upsert.push(peer);
      if (pskChanged && peer.presharedKey === null) plan.clearPsk.push(peer);
      plan.updated.push(peer.userId);
    } else if (keyChanged) plan.updated.push(peer.userId);
    else plan.unchanged.push(peer.userId);
  }

  if (mode === "snapshot") {
    for (const current of device.values()) {
      if (byKey.has(current.publicKey)) continue;
      removeKey(current.publicKey, current.userId);
      if (current.userId && !byUser.has(current.userId)) plan.removed.push(current.userId);
    }
  }
  return plan;
}

/** The desired peer of a user, a validation failure, or null when the user has no WireGuard access. */
export function desiredPeerFor(
  user: AgentUser,
  placement: PlacementConfig,
): DesiredPeer | UserFailure | null {
  const wg = user.wireguard;
  if (!wg) return null;
  const invalid = validateUserId(user.id);
  if (invalid) return { userId: user.id, error: invalid };
  if (!isWireguardKey(wg.publicKey)) return { userId: user.id, error: "malformed public key" };
  // Never echo the key itself: a malformed PSK may still be a secret.
  if (wg.presharedKey && !isWireguardKey(wg.presharedKey))
    return { userId: user.id, error: "malformed preshared key" };
  // Parsed once for all three uses: every peer of every snapshot passes here.
  const cidrs = wg.allowedIps.map((c) => parseCidr(c));
  if (cidrs.some((c) => c === null)) return { userId: user.id, error: "malformed allowed-ips" };
  const index = interfaceIndexForCidrs(placement, cidrs, wg.allowedIps);
  if (typeof index === "string") return { userId: user.id, error: index };
  return {
    userId: user.id,
    publicKey: wg.publicKey,
    presharedKey: wg.presharedKey ?? null,
    allowedIps: canonicalCidrs(cidrs, wg.allowedIps),
    index,
  };
}
