import { type FieldIssue, invalid, isDomainValidationError, type Validation } from "./errors";
import { blockSize, type Cidr, formatCidr, formatIp, type IpFamily, parseCidr, parseIp } from "./ip-address";

// WireGuard address pools as offset math. The database stores one integer offset per allocation
// (lowest free offset, unique per pool): an IPv6 /64 has 2^64 addresses, so nothing may ever
// enumerate a pool, and an offset survives a re-render of the address text. Offset 0 is the first
// assignable address; the network address, the IPv4 broadcast address and the reserved first hosts
// (the node's own interface address, by default one: x.x.x.1) are never assignable.

export const DEFAULT_RESERVED_HOSTS = 1;
export const MAX_RESERVED_HOSTS = 1024;

export interface AddressPool {
  cidr: Cidr;
  reservedHosts: number;
  /** The address value at offset 0. */
  first: bigint;
  /** How many addresses can be assigned. */
  capacity: bigint;
}

/**
 * Builds a single-family pool. IPv4 excludes the network and broadcast addresses, IPv6 only the
 * all-zero host (the subnet-router anycast address, RFC 4291 §2.6.1; there is no broadcast).
 * Throws `DomainValidationError` naming `field` when nothing would be left to assign.
 */
export function createPool(
  cidrText: string,
  reservedHosts = DEFAULT_RESERVED_HOSTS,
  field = "cidr",
): AddressPool {
  if (!Number.isSafeInteger(reservedHosts) || reservedHosts < 0 || reservedHosts > MAX_RESERVED_HOSTS) {
    throw new RangeError(`reservedHosts must be a whole number from 0 to ${MAX_RESERVED_HOSTS}`);
  }
  const cidr = parseCidr(cidrText, field);
  const excluded = cidr.family === 4 ? 2n : 1n;
  const first = cidr.network + 1n + BigInt(reservedHosts);
  const capacity = blockSize(cidr) - excluded - BigInt(reservedHosts);
  if (capacity < 1n) {
    const why = reservedHosts > 0 ? ` after ${reservedHosts} reserved host(s)` : "";
    invalid(field, `${formatCidr(cidr)} leaves no assignable address${why}; use a shorter prefix`);
  }
  return { cidr, reservedHosts, first, capacity };
}

export function capacity(pool: AddressPool): bigint {
  return pool.capacity;
}

function toOffset(offset: bigint | number): bigint {
  if (typeof offset === "number" && !Number.isSafeInteger(offset))
    throw new RangeError("offset must be an integer");
  return BigInt(offset);
}

/** The address text at `offset` (0-based). Throws `RangeError` outside [0, capacity). */
export function addressAt(pool: AddressPool, offset: bigint | number): string {
  const o = toOffset(offset);
  if (o < 0n || o >= pool.capacity) {
    throw new RangeError(
      `offset ${o} is outside the pool ${formatCidr(pool.cidr)} (capacity ${pool.capacity})`,
    );
  }
  return formatIp(pool.cidr.family, pool.first + o);
}

/**
 * The offset of an assignable address of the pool, or `null` when the address is of the other
 * family, outside the block, or one of the excluded addresses. Throws only for malformed text.
 */
export function offsetOf(pool: AddressPool, address: string, field = "address"): bigint | null {
  const ip = parseIp(address, field);
  if (ip.family !== pool.cidr.family) return null;
  const o = ip.value - pool.first;
  return o >= 0n && o < pool.capacity ? o : null;
}

/** The reserved host addresses in order; the first is the node's own interface address. */
export function reservedAddresses(pool: AddressPool): string[] {
  return Array.from({ length: pool.reservedHosts }, (_, i) =>
    formatIp(pool.cidr.family, pool.cidr.network + 1n + BigInt(i)),
  );
}

/** A node group's pool as configured: IPv4 always, IPv6 optional (snake_case, as in the API). */
export interface PoolDefinition {
  ipv4: string;
  ipv6?: string | null;
  reserved_hosts?: number;
}

/**
 * A dual-stack pool hands out ONE offset per subscription that names both addresses, so the two
 * families can never disagree and the allocator needs one unique constraint, not two. Its capacity
 * is the smaller family's (in practice the IPv4 block).
 */
export interface DualStackPool {
  ipv4: AddressPool;
  ipv6: AddressPool | null;
  capacity: bigint;
}

/**
 * Validates a pool definition and reports every problem at once. Field names in issues are the
 * definition's keys, prefixed with `prefix` (e.g. "wireguard_pool.") so the API can point at them.
 */
export function validatePoolDefinition(def: PoolDefinition, prefix = ""): Validation<DualStackPool> {
  const issues: FieldIssue[] = [];
  const reserved = def.reserved_hosts ?? DEFAULT_RESERVED_HOSTS;
  const reservedOk = Number.isSafeInteger(reserved) && reserved >= 0 && reserved <= MAX_RESERVED_HOSTS;
  if (!reservedOk) {
    issues.push({
      field: `${prefix}reserved_hosts`,
      message: `must be a whole number from 0 to ${MAX_RESERVED_HOSTS}`,
    });
  }
  const build = (key: "ipv4" | "ipv6", family: IpFamily, text: unknown): AddressPool | null => {
    const field = `${prefix}${key}`;
    if (typeof text !== "string" || text.trim() === "") {
      issues.push({ field, message: `must be an IPv${family} CIDR block like ${example(family)}` });
      return null;
    }
    try {
      const pool = createPool(text, reservedOk ? reserved : 0, field);
      if (pool.cidr.family !== family) {
        issues.push({ field, message: `must be an IPv${family} block, got IPv${pool.cidr.family}` });
        return null;
      }
      return pool;
    } catch (e) {
      if (!isDomainValidationError(e)) throw e;
      issues.push(...e.issues);
      return null;
    }
  };
  const ipv4 = build("ipv4", 4, def.ipv4);
  const ipv6 = def.ipv6 === null || def.ipv6 === undefined ? null : build("ipv6", 6, def.ipv6);
  if (issues.length > 0 || ipv4 === null) return { ok: false, issues };
  const cap = ipv6 && ipv6.capacity < ipv4.capacity ? ipv6.capacity : ipv4.capacity;
  return { ok: true, value: { ipv4, ipv6, capacity: cap } };
}

function example(family: IpFamily): string {
  return family === 4 ? "10.8.0.0/16" : "fd00:8::/64";
}

/** Both addresses for one allocation offset. Throws `RangeError` outside [0, capacity). */
export function addressesAt(
  pool: DualStackPool,
  offset: bigint | number,
): { ipv4: string; ipv6: string | null } {
  const o = toOffset(offset);
  if (o < 0n || o >= pool.capacity) {
    throw new RangeError(`offset ${o} is outside the dual-stack pool (capacity ${pool.capacity})`);
  }
  return { ipv4: addressAt(pool.ipv4, o), ipv6: pool.ipv6 ? addressAt(pool.ipv6, o) : null };
}
