// Deterministic test population for `npm run bench -- agent`: user i's credentials are a pure function
// of (seed, i), so the "reconnect" snapshot can be rebuilt as fresh objects with identical content
// (as a new session's snapshot would be decoded), and the traffic child can derive user i's UUID
// without receiving 100k credentials over IPC.

import { createHash } from "node:crypto";
import { type DesiredUser, Engine } from "@vpnpanel/proto";

export interface Population {
  /** 10 characters; stands in for the time part of a real `sub_` id. */
  seed: string;
  /** Users 0..xrayUsers-1 carry Xray credentials and ENGINE_XRAY. */
  xrayUsers: number;
  /** Users 0..wgPeers-1 carry a WireGuard peer and ENGINE_WIREGUARD. */
  wgPeers: number;
  /** IPv4 pool network as an integer (e.g. 10.80.0.0). */
  poolNetwork: number;
  /** Pool offset of user 0's address (offset 1 is the node's own address). */
  firstOffset: number;
}

const digest = (seed: string, kind: string, i: number): Buffer =>
  createHash("sha256").update(`${seed}:${kind}:${i}`).digest();

/** Same shape and length as the control plane's subscription ids (`sub_` + 26 characters). */
export function userIdOf(p: Population, i: number): string {
  return `sub_${p.seed}${i.toString().padStart(16, "0")}`;
}

export function uuidOf(p: Population, i: number): string {
  const b = digest(p.seed, "uuid", i).subarray(0, 16);
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const ipv4 = (value: number): string => [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");

export function parseIpv4(text: string): number {
  const parts = text.split(".").map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255))
    throw new Error(`bad IPv4 ${text}`);
  return parts.reduce((acc, n) => acc * 256 + n, 0);
}

/**
 * One user as the desired store holds it (the decoded snapshot entry). WireGuard public keys and PSKs
 * are 32 hash bytes: wg and wireguard-go accept any 32-byte value, and a real X25519 key pair per
 * user would only add ~10 s of key generation to the benchmark, not to the agent.
 */
export function desiredUser(p: Population, i: number, leaseExpiry: Date): DesiredUser {
  const id = userIdOf(p, i);
  const engines: Engine[] = [];
  const user: DesiredUser = {
    userId: id,
    email: id,
    engines,
    suspended: false,
    lease: { remainingBytes: 50n * 1024n ** 3n, expiresAt: leaseExpiry },
  };
  if (i < p.xrayUsers) {
    engines.push(Engine.XRAY);
    user.xray = {
      uuid: uuidOf(p, i),
      trojanPassword: digest(p.seed, "trojan", i).subarray(0, 18).toString("base64url"),
      shadowsocksPassword: digest(p.seed, "ss", i).subarray(0, 18).toString("base64url"),
      vmessAlterId: 0,
      vlessFlow: "",
    };
  }
  if (i < p.wgPeers) {
    engines.push(Engine.WIREGUARD);
    user.wireguard = {
      publicKey: digest(p.seed, "wgpub", i).toString("base64"),
      presharedKey: digest(p.seed, "wgpsk", i).toString("base64"),
      allowedIps: [`${ipv4(p.poolNetwork + p.firstOffset + i)}/32`],
      interface: "",
    };
  }
  return user;
}

/** The desired store's user map (DesiredStore.state.users), freshly built. */
export function buildDesiredUsers(p: Population, leaseExpiry: Date): Map<string, DesiredUser> {
  const users = new Map<string, DesiredUser>();
  const total = Math.max(p.xrayUsers, p.wgPeers);
  for (let i = 0; i < total; i++) {
    const user = desiredUser(p, i, leaseExpiry);
    users.set(user.userId, user);
  }
  return users;
}
