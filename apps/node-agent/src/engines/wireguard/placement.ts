// Which interface a peer lives on, and which routes each interface needs.
//
// One wireguard-go device holds at most 65,536 peers (research/limits.md §4), so a big node runs
// several interfaces: `${prefix}0`, `${prefix}1`, … listening on listenPort + index. A client has to
// know which port to dial, so placement must be a function the control plane can compute from data it
// already owns, and that never moves a peer by itself. The rule is the peer's IPv4 address slot:
//
//   index = floor((firstAllowedIPv4InPool - poolNetwork) / peersPerInterface)
//
// With a sequential allocator the first 50,000 addresses land on interface 0, the next on 1, and so on.
// Peers with no IPv4 in the pool go to interface 0. Routing follows: interface 0 carries the node
// address (its connected route covers the whole pool); interface k ≥ 1 gets the more specific routes
// covering its slot range, plus host routes for any allowed IP (e.g. the peer's IPv6) outside them.

export interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);

// The peer-address paths below run for every peer of every snapshot (100k at a time, also when
// nothing changed), so IPv4 is handled in plain numbers and converted to bigint once.
function parseIPv4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const octet = Number(p);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return BigInt(value);
}

function parseIPv6(text: string): bigint | null {
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.split("::").length > 2) return null;
  const [head = "", tail] = text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const missing = 8 - h.length - t.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  let value = 0n;
  for (const g of [...h, ...new Array<string>(missing).fill("0"), ...t]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    value = (value << 16n) | BigInt(Number.parseInt(g, 16));
  }
  return value;
}

/** Parses `a.b.c.d/n` or `x::y/n` (a bare address is a host route); the network is masked. */
export function parseCidr(text: string): Cidr | null {
  const [addr = "", len] = text.trim().split("/");
  const v4 = parseIPv4(addr);
  const family: 4 | 6 = v4 !== null ? 4 : 6;
  const value = v4 ?? parseIPv6(addr);
  if (value === null) return null;
  const prefix = len === undefined ? bits(family) : Number(len);
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > bits(family) ||
    (len !== undefined && !/^\d+$/.test(len))
  )
    return null;
  const hostBits = BigInt(bits(family) - prefix);
  return { family, network: (value >> hostBits) << hostBits, prefix };
}

export function formatCidr(cidr: Cidr): string {
  if (cidr.family === 4) {
    const n = Number(cidr.network);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${cidr.prefix}`;
  }
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((cidr.network >> s) & 0xffffn).toString(16));
  return `${groups.join(":")}/${cidr.prefix}`;
}

/** Canonical text of an allowed-ip list, for comparisons (order and spelling independent). */
export function canonicalAllowedIps(list: readonly string[]): string[] {
  return canonicalCidrs(
    list.map((c) => parseCidr(c)),
    list,
  );
}

/** canonicalAllowedIps() for a list already parsed (`texts` stands in for entries that did not parse). */
export function canonicalCidrs(cidrs: ReadonlyArray<Cidr | null>, texts: readonly string[]): string[] {
  const formatted = cidrs.map((c, i) => (c ? formatCidr(c) : (texts[i] as string)));
  // The common case — one address per peer — needs no de-duplication or sorting.
  return formatted.length <= 1 ? formatted : [...new Set(formatted)].sort();
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const shift = BigInt(bits(outer.family) - outer.prefix);
  return inner.network >> shift === outer.network >> shift;
}

/** Smallest list of CIDRs covering the inclusive IPv4 range [from, to]. */
export function rangeToCidrs(from: bigint, to: bigint): Cidr[] {
  const out: Cidr[] = [];
  let start = from;
  while (start <= to) {
    let size = 32;
    // Grow the block while it stays aligned on `start` and inside the range.
    while (size > 0) {
      const block = 1n << BigInt(33 - size);
      if (start % block !== 0n || start + block - 1n > to) break;
      size--;
    }
    out.push({ family: 4, network: start, prefix: size });
    start += 1n << BigInt(32 - size);
  }
  return out;
}

export interface PlacementConfig {
  /** IPv4 pool peers' addresses are allocated from, e.g. 10.8.0.0/16. */
  pool: Cidr;
  peersPerInterface: number;
  maxInterfaces: number;
}

/** Interface index for a peer, or an error text when its slot lies beyond maxInterfaces. */
export function interfaceIndexFor(config: PlacementConfig, allowedIps: readonly string[]): number | string {
  return interfaceIndexForCidrs(
    config,
    allowedIps.map((c) => parseCidr(c)),
    allowedIps,
  );
}

/** interfaceIndexFor() for a list already parsed (`texts` only names an address in the error). */
export function interfaceIndexForCidrs(
  config: PlacementConfig,
  cidrs: ReadonlyArray<Cidr | null>,
  texts: readonly string[],
): number | string {
  for (const [i, cidr] of cidrs.entries()) {
    const text = texts[i];
    if (!cidr || cidr.family !== 4 || !cidrContains(config.pool, cidr)) continue;
    const index = Number((cidr.network - config.pool.network) / BigInt(config.peersPerInterface));
    if (index >= config.maxInterfaces)
      return `address ${text} maps to interface ${index} ≥ max ${config.maxInterfaces}`;
    return index;
  }
  return 0;
}

/** The slot ranges interface `index` routes (none for 0: its address prefix covers the pool). */
export function slotRoutes(config: PlacementConfig, index: number): Cidr[] {
  if (index === 0) return [];
  const size = 1n << BigInt(32 - config.pool.prefix);
  const from = BigInt(index) * BigInt(config.peersPerInterface);
  if (from >= size) return [];
  const last = from + BigInt(config.peersPerInterface) - 1n;
  const to = last < size ? last : size - 1n;
  return rangeToCidrs(config.pool.network + from, config.pool.network + to);
}

/** Allowed IPs of a peer that the interface's own routes do not cover and need a route of their own. */
export function extraRoutes(covered: readonly Cidr[], allowedIps: readonly string[]): string[] {
  const out: string[] = [];
  for (const text of allowedIps) {
    const cidr = parseCidr(text);
    // A /0 on a server-side peer would hijack the node's default route; never install it.
    if (!cidr || cidr.prefix === 0) continue;
    if (!covered.some((c) => cidrContains(c, cidr))) out.push(formatCidr(cidr));
  }
  return out;
}
