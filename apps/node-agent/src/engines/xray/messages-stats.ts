// StatsService messages (identical field numbers in Xray and v2ray 4.34, research/protocols.md §1.4)
// and the parser for counter names. Counters are read with reset=false: a read-and-zero loses the
// interval whenever the reply is lost in transit, while absolute counters plus an agent-side baseline
// survive any crash (usage/delta-tracker.ts).

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { encode, putBool, putString } from "./messages-user";

export interface Stat {
  name: string;
  value: number;
}

/** `QueryStatsRequest { string pattern = 1; bool reset = 2; }` — pattern is a substring match. */
export function encodeQueryStats(pattern: string, reset = false): Uint8Array {
  return encode((w) => {
    putString(w, 1, pattern);
    putBool(w, 2, reset);
  });
}

/** `GetStatsRequest { string name = 1; bool reset = 2; }` — exact counter name. */
export function encodeGetStats(name: string, reset = false): Uint8Array {
  return encodeQueryStats(name, reset);
}

/** `GetStatsResponse { Stat stat = 1; }` */
export function decodeGetStatsResponse(bytes: Uint8Array): Stat {
  const stats = decodeQueryStatsResponse(bytes);
  return stats[0] ?? { name: "", value: 0 };
}

function int64ToNumber(value: bigint | string): number {
  // Counters are int64 bytes; 2^53 bytes (9 PB) per user is out of reach, so Number is exact.
  return Number(value);
}

function decodeStat(bytes: Uint8Array): Stat {
  const r = new BinaryReader(bytes);
  const stat: Stat = { name: "", value: 0 };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) stat.name = r.string();
    else if (field === 2 && wireType === WireType.Varint) stat.value = int64ToNumber(r.int64());
    else r.skip(wireType, field);
  }
  return stat;
}

/** `QueryStatsResponse { repeated Stat stat = 1; }`, `Stat { string name = 1; int64 value = 2; }` */
export function decodeQueryStatsResponse(bytes: Uint8Array): Stat[] {
  const r = new BinaryReader(bytes);
  const stats: Stat[] = [];
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) stats.push(decodeStat(r.bytes()));
    else r.skip(wireType, field);
  }
  return stats;
}

export interface SysStats {
  numGoroutine: number;
  numGC: number;
  alloc: number;
  totalAlloc: number;
  sys: number;
  mallocs: number;
  frees: number;
  liveObjects: number;
  pauseTotalNs: number;
  uptime: number;
}

const SYS_FIELDS: Record<number, keyof SysStats> = {
  1: "numGoroutine",
  2: "numGC",
  3: "alloc",
  4: "totalAlloc",
  5: "sys",
  6: "mallocs",
  7: "frees",
  8: "liveObjects",
  9: "pauseTotalNs",
  10: "uptime",
};

/** `SysStatsResponse` — fields 1,2,10 are uint32, 3–9 uint64. The request (`SysStatsRequest {}`) is empty. */
export function decodeSysStatsResponse(bytes: Uint8Array): SysStats {
  const r = new BinaryReader(bytes);
  const out: SysStats = {
    numGoroutine: 0,
    numGC: 0,
    alloc: 0,
    totalAlloc: 0,
    sys: 0,
    mallocs: 0,
    frees: 0,
    liveObjects: 0,
    pauseTotalNs: 0,
    uptime: 0,
  };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    const key = SYS_FIELDS[field];
    if (key && wireType === WireType.Varint) out[key] = Number(r.uint64());
    else r.skip(wireType, field);
  }
  return out;
}

export interface UserTraffic {
  email: string;
  up: number;
  down: number;
}

/**
 * Folds `user>>>EMAIL>>>traffic>>>uplink|downlink` counters into one entry per email. Other counters
 * (inbound/outbound, Xray's `user>>>EMAIL>>>online`) are ignored. Emails cannot contain `>>>` (the
 * driver rejects such ids), so splitting is unambiguous.
 */
export function parseUserTraffic(stats: readonly Stat[]): Map<string, UserTraffic> {
  const out = new Map<string, UserTraffic>();
  for (const { name, value } of stats) {
    const parts = name.split(">>>");
    if (parts.length !== 4 || parts[0] !== "user" || parts[2] !== "traffic") continue;
    const email = parts[1] as string;
    const link = parts[3];
    if (!email || (link !== "uplink" && link !== "downlink")) continue;
    let entry = out.get(email);
    if (!entry) {
      entry = { email, up: 0, down: 0 };
      out.set(email, entry);
    }
    if (link === "uplink") entry.up = value;
    else entry.down = value;
  }
  return out;
}
