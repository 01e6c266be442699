import type { DesiredUserRecord, NodeConfigRecord } from "@vpnpanel/control";
import {
  type ControlMessage,
  type DesiredUser,
  Engine,
  EngineStatus,
  LeaseState,
  type NodeConfig,
  type UserLease,
} from "@vpnpanel/proto";

// Plain control-plane records ↔ proto messages. The control package knows nothing of protobuf.

export const engineToProto = (e: string): Engine => (e === "xray" ? Engine.XRAY : Engine.WIREGUARD);

export const engineName = (e: Engine): string =>
  e === Engine.XRAY ? "xray" : e === Engine.WIREGUARD ? "wireguard" : "unknown";

export const engineStatusName = (s: EngineStatus): string =>
  s === EngineStatus.RUNNING
    ? "running"
    : s === EngineStatus.DEGRADED
      ? "degraded"
      : s === EngineStatus.DOWN
        ? "down"
        : "unknown";

export const leaseStateName = (s: LeaseState): string | null =>
  s === LeaseState.ONLINE ? "online" : s === LeaseState.OFFLINE ? "offline" : null;

export function leaseToProto(lease: DesiredUserRecord["lease"]): UserLease {
  return { remainingBytes: lease.remainingBytes, ...(lease.expiresAt ? { expiresAt: lease.expiresAt } : {}) };
}

export function desiredUserToProto(u: DesiredUserRecord): DesiredUser {
  return {
    userId: u.userId,
    email: u.email,
    engines: u.engines.map(engineToProto),
    ...(u.xray
      ? {
          xray: {
            uuid: u.xray.uuid,
            trojanPassword: u.xray.trojanPassword,
            shadowsocksPassword: u.xray.shadowsocksPassword,
            vmessAlterId: 0,
            vlessFlow: u.xray.vlessFlow,
          },
        }
      : {}),
    ...(u.wireguard
      ? {
          wireguard: {
            publicKey: u.wireguard.publicKey,
            presharedKey: u.wireguard.presharedKey,
            allowedIps: u.wireguard.allowedIps,
            interface: "",
          },
        }
      : {}),
    lease: leaseToProto(u.lease),
    suspended: u.suspended,
  };
}

export function nodeConfigToProto(c: NodeConfigRecord): NodeConfig {
  return {
    xrayInboundsJson: c.xrayInboundsJson,
    wireguardInterfaces: c.wireguardInterfaces.map((w) => ({ ...w, addresses: [...w.addresses] })),
  };
}

/** The kind of a control message, for metrics and logs. */
export function kindOf(message: ControlMessage): string {
  return message.body?.$case ?? "empty";
}
