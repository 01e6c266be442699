import { invalid } from "./errors";

// Byte counts are bigint end to end: a busy subscriber passes 2^53 bytes (8 PiB) only in theory,
// but a node group's totals and bulk sums do not stay below it, and mixing number and bigint is how
// off-by-one-byte quota bugs start. `null` quota means unlimited everywhere in this module.

/** PostgreSQL `int8` is the storage type of every byte column; nothing larger can be persisted. */
export const MAX_BYTES = 2n ** 63n - 1n;

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/**
 * A quota is spent when usage has reached it, not only when it passed it: "cut off the moment the
 * quota is spent" means a subscriber at exactly `quota` bytes gets no more, and a zero quota is
 * exhausted from the start. The SQL twin of this predicate is
 * `quota_bytes IS NOT NULL AND used_bytes >= quota_bytes`.
 */
export function isExhausted(quotaBytes: bigint | null, usedBytes: bigint): boolean {
  return quotaBytes !== null && usedBytes >= quotaBytes;
}

/** Bytes left before the quota is spent, never negative (an overrun of one sampling interval is
 * possible by design, see ARCHITECTURE §5), or `null` for an unlimited quota. */
export function remainingBytes(quotaBytes: bigint | null, usedBytes: bigint): bigint | null {
  if (quotaBytes === null) return null;
  const left = quotaBytes - usedBytes;
  return left > 0n ? left : 0n;
}

/**
 * Whether adding `deltaBytes` takes a subscription from "not exhausted" to "exhausted". Ingest uses
 * it to emit exactly one `quota_exceeded` per crossing: a subscription that was already over (a
 * later batch of the same overrun) does not cross again.
 */
export function crossesQuota(quotaBytes: bigint | null, usedBefore: bigint, deltaBytes: bigint): boolean {
  if (deltaBytes < 0n) throw new RangeError("a usage delta cannot be negative");
  return !isExhausted(quotaBytes, usedBefore) && isExhausted(quotaBytes, usedBefore + deltaBytes);
}

/**
 * Human form with binary units ("1.5 GiB", "512 B"), rounded half up to `fractionDigits` and with
 * trailing zeros dropped, so remarks stay short. Exact integer math: no float rounding surprises
 * near unit boundaries (1023.999 KiB prints as "1 MiB", not "1024 KiB").
 */
export function formatBytes(bytes: bigint, fractionDigits = 2): string {
  if (!Number.isInteger(fractionDigits) || fractionDigits < 0 || fractionDigits > 6) {
    throw new RangeError("fractionDigits must be an integer from 0 to 6");
  }
  const sign = bytes < 0n ? "-" : "";
  const abs = bytes < 0n ? -bytes : bytes;
  let unit = 0;
  while (unit < UNITS.length - 1 && abs >= 1024n ** BigInt(unit + 1)) unit++;
  if (unit === 0) return `${sign}${abs} B`;

  const scale = 10n ** BigInt(fractionDigits);
  const round = (u: number) => {
    const den = 1024n ** BigInt(u);
    return (abs * scale * 2n + den) / (den * 2n);
  };
  let scaled = round(unit);
  if (scaled >= 1024n * scale && unit < UNITS.length - 1) {
    unit++;
    scaled = round(unit);
  }
  const whole = scaled / scale;
  const frac = (scaled % scale).toString().padStart(fractionDigits, "0").replace(/0+$/, "");
  return `${sign}${whole}${frac ? `.${frac}` : ""} ${UNITS[unit]}`;
}

/** `formatBytes`, with "unlimited" for a `null` quota. */
export function formatQuota(quotaBytes: bigint | null, fractionDigits = 2): string {
  return quotaBytes === null ? "unlimited" : formatBytes(quotaBytes, fractionDigits);
}

// Every unit is binary, "GB" included. Deliberate: Marzban, 3x-ui and the other panels operators
// come from treat "10 GB" as 10·2^30, and the clients that show `subscription-userinfo`
// (v2rayN, Hiddify, Clash, sing-box) divide by 1024 too. Reading "GB" as 10^9 would make a
// "10 GB" plan show as "9.31 GB" on every phone. Suffixes are case-insensitive: a quota is never
// in bits, so "Kb" is not kilobits.
const MULTIPLIERS: Record<string, bigint> = {
  "": 1n,
  b: 1n,
  byte: 1n,
  bytes: 1n,
};
for (const [i, letter] of ["k", "m", "g", "t", "p", "e"].entries()) {
  const m = 1024n ** BigInt(i + 1);
  MULTIPLIERS[letter] = m;
  MULTIPLIERS[`${letter}b`] = m;
  MULTIPLIERS[`${letter}ib`] = m;
}

const SIZE = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i;

/**
 * Parses "10GB", "500 MiB", "1.5g", "1048576" (bare number = bytes) into bytes. A fraction is
 * allowed and rounded down to a whole byte (a quota never grants more than was written). Throws
 * `DomainValidationError` naming `field` for anything else: negative, empty, unknown unit,
 * exponent notation, or more than an `int8` column can hold.
 */
export function parseSize(input: string, field = "size"): bigint {
  const text = input.trim();
  if (text.length === 0) invalid(field, "is empty; expected a size like 10GB, 500 MiB or 1048576");
  if (text.length > 40) invalid(field, "is too long to be a size");
  const match = SIZE.exec(text);
  if (!match) {
    invalid(field, `"${text}" is not a size; expected a non-negative number and a unit like 10GB or 500 MiB`);
  }
  const [, intPart = "0", fracPart = "", unitText = ""] = match;
  const multiplier = MULTIPLIERS[unitText.toLowerCase()];
  if (multiplier === undefined) {
    invalid(field, `unknown unit "${unitText}"; use B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB or EB/EiB`);
  }
  const fracScale = 10n ** BigInt(fracPart.length);
  const bytes = ((BigInt(intPart) * fracScale + BigInt(fracPart || "0")) * multiplier) / fracScale;
  if (bytes > MAX_BYTES) invalid(field, `${text} is larger than the largest storable size (8 EiB - 1 B)`);
  return bytes;
}
