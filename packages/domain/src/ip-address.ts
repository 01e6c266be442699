import { invalid } from "./errors";

// IP text ↔ bigint, for both families, strict enough that one address has exactly one stored form:
// no IPv4 leading zeros (some parsers read "010" as octal 8), no IPv6 zone ids, and IPv6 printed
// per RFC 5952 (lowercase, longest zero run compressed) so string equality means address equality.

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

export interface Cidr {
  family: IpFamily;
  /** The network address (host bits zero). */
  network: bigint;
  prefix: number;
}

export const familyBits = (family: IpFamily): number => (family === 4 ? 32 : 128);

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEXTET = /^[0-9a-f]{1,4}$/i;

function parseV4(text: string): bigint | null {
  const m = V4.exec(text);
  if (!m) return null;
  let value = 0n;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith("0")) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseV6(text: string): bigint | null {
  const dbl = text.indexOf("::");
  if (dbl !== -1 && text.indexOf("::", dbl + 1) !== -1) return null;
  const split = (s: string) => (s === "" ? [] : s.split(":"));
  const head = dbl === -1 ? split(text) : split(text.slice(0, dbl));
  const tail = dbl === -1 ? [] : split(text.slice(dbl + 2));
  // An embedded IPv4 tail ("::ffff:192.0.2.1") stands for the last two hextets. Only the very last
  // group may be one: with "::" that is the tail's last group, never the head's.
  const last = dbl === -1 ? head : tail;
  const lastPart = last[last.length - 1];
  if (lastPart?.includes(".")) {
    const v4 = parseV4(lastPart);
    if (v4 === null) return null;
    last.splice(last.length - 1, 1, (v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16));
  }
  if (![...head, ...tail].every((h) => HEXTET.test(h))) return null;
  const count = head.length + tail.length;
  if (dbl === -1 ? count !== 8 : count > 7) return null;
  const groups = [...head, ...Array<string>(8 - count).fill("0"), ...tail];
  return groups.reduce((acc, h) => (acc << 16n) | BigInt(`0x${h}`), 0n);
}

/** Parses an IPv4 or IPv6 address; throws `DomainValidationError` naming `field`. */
export function parseIp(text: string, field = "address"): IpAddress {
  const t = text.trim();
  if (t.includes(":")) {
    if (t.includes("%")) invalid(field, "must not carry an IPv6 zone id");
    const value = parseV6(t);
    if (value === null) invalid(field, `"${t}" is not an IPv6 address`);
    return { family: 6, value };
  }
  const value = parseV4(t);
  if (value === null) invalid(field, `"${t}" is not an IPv4 address (four numbers 0-255, no leading zeros)`);
  return { family: 4, value };
}

export function formatIp(family: IpFamily, value: bigint): string {
  const max = (1n << BigInt(familyBits(family))) - 1n;
  if (value < 0n || value > max) throw new RangeError(`not an IPv${family} address value`);
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 255n).toString()).join(".");
  const groups = Array.from({ length: 8 }, (_, i) => (value >> BigInt(112 - 16 * i)) & 0xffffn);
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** Parses "10.8.0.0/16" or "fd00:8::/64". Host bits must be zero: "10.8.0.1/16" is rejected with
 * the network it probably meant, because silently masking hides a typo in a pool definition. */
export function parseCidr(text: string, field = "cidr"): Cidr {
  const t = text.trim();
  const slash = t.indexOf("/");
  if (slash === -1) invalid(field, `"${t}" needs a prefix length, like 10.8.0.0/16 or fd00::/64`);
  const { family, value } = parseIp(t.slice(0, slash), field);
  const prefixText = t.slice(slash + 1);
  const bits = familyBits(family);
  const prefix = Number(prefixText);
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || prefix > bits) {
    invalid(field, `prefix length must be a number from 0 to ${bits}`);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    invalid(
      field,
      `"${t}" has host bits set; the network is ${formatIp(family, value & ~hostMask)}/${prefix}`,
    );
  }
  return { family, network: value, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.family, cidr.network)}/${cidr.prefix}`;
}

/** Number of addresses in the block, network and broadcast included. */
export function blockSize(cidr: Cidr): bigint {
  return 1n << BigInt(familyBits(cidr.family) - cidr.prefix);
}

export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  return (
    address.family === cidr.family &&
    address.value >= cidr.network &&
    address.value < cidr.network + blockSize(cidr)
  );
}

/** Two blocks overlap iff one contains the other's network (CIDR blocks nest or are disjoint). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return (
    a.family === b.family &&
    (cidrContains(a, { family: b.family, value: b.network }) ||
      cidrContains(b, { family: a.family, value: a.network }))
  );
}
