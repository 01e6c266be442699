// DesiredUser (the control plane's view) → AgentUser (what a driver applies). Pure.
//
// The driver key is DesiredUser.user_id — the subscription id. It becomes the Xray email (so the
// core's counters are named `user>>>SUBSCRIPTION_ID>>>traffic>>>…`), the key the WireGuard driver
// maps to a peer, and UsageSample.user_id on the way back: one id end to end, no lookup table that
// could drift. DesiredUser.email is not used by the agent (the control plane keeps it equal to the id,
// or uses it for display only).
//
// A user gets an engine only when `engines` lists it AND the matching credentials are present.
// Suspended users, and users the agent cut on their lease, are kept in the desired state but applied
// to no engine.

import { type DesiredUser, Engine, type UserLease } from "@vpnpanel/proto";
import type { AgentUser, EngineKind } from "../engines/types";
import type { Lease } from "../usage/lease";

export const engineOfKind = (kind: EngineKind): Engine => (kind === "xray" ? Engine.XRAY : Engine.WIREGUARD);

export function toAgentUser(user: DesiredUser, kind: EngineKind): AgentUser | null {
  if (!user.engines.includes(engineOfKind(kind))) return null;
  if (kind === "xray") {
    const x = user.xray;
    if (!x) return null;
    return {
      id: user.userId,
      xray: {
        uuid: x.uuid,
        trojanPassword: x.trojanPassword,
        shadowsocksPassword: x.shadowsocksPassword,
        ...(x.vmessAlterId ? { vmessAlterId: x.vmessAlterId } : {}),
      },
    };
  }
  const w = user.wireguard;
  if (!w) return null;
  return {
    id: user.userId,
    wireguard: {
      publicKey: w.publicKey,
      ...(w.presharedKey ? { presharedKey: w.presharedKey } : {}),
      allowedIps: [...w.allowedIps],
    },
  };
}

/** The users one engine must hold: desired, not suspended, not cut locally, with credentials for it. */
export function effectiveUsers(
  users: Iterable<DesiredUser>,
  kind: EngineKind,
  isCut: (userId: string) => boolean,
): AgentUser[] {
  const out: AgentUser[] = [];
  for (const user of users) {
    if (user.suspended || isCut(user.userId)) continue;
    const mapped = toAgentUser(user, kind);
    if (mapped) out.push(mapped);
  }
  return out;
}

/**
 * A proto lease as the lease book keeps it; null = no local limit (unset, or unlimited and never
 * expiring). remaining_bytes -1 means unlimited bytes.
 */
export function leaseFromProto(lease: UserLease | undefined, asOfSeq: bigint): Lease | null {
  if (!lease) return null;
  const remaining = lease.remainingBytes < 0n ? null : Number(lease.remainingBytes);
  const expiresAt = lease.expiresAt ? lease.expiresAt.getTime() : null;
  if (remaining === null && expiresAt === null) return null;
  return { remainingBytes: remaining, expiresAt, asOfSeq: Number(asOfSeq) };
}
