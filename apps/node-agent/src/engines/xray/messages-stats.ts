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
  for (const { name, value } of stats) addUserCounter(out, name, value);
  return out;
}

const USER_PREFIX = "user>>>";
const TRAFFIC_INFIX = ">>>traffic>>>";

/** One counter into the per-email map; anything but a user's uplink/downlink counter is ignored. */
function addUserCounter(out: Map<string, UserTraffic>, name: string, value: number): void {
  if (!name.startsWith(USER_PREFIX)) return;
  const infix = name.indexOf(TRAFFIC_INFIX, USER_PREFIX.length);
  if (infix <= USER_PREFIX.length) return;
  const link = name.slice(infix + TRAFFIC_INFIX.length);
  if (link !== "uplink" && link !== "downlink") return;
  const email = name.slice(USER_PREFIX.length, infix);
  if (email.includes(">>>")) return;
  let entry = out.get(email);
  if (!entry) {
    entry = { email, up: 0, down: 0 };
    out.set(email, entry);
  }
  if (link === "uplink") entry.up = value;
  else entry.down = value;
}

/**
 * decodeQueryStatsResponse + parseUserTraffic in one pass over the reply, without a Stat object (and
 * a sub-reader) per counter: at 100k active users the reply holds 200k counters (~9 MB), polled every
 * usage interval, and the intermediate objects were most of the poll's memory peak.
 */
export function decodeUserTraffic(bytes: Uint8Array): Map<string, UserTraffic> {
  const out = new Map<string, UserTraffic>();
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field !== 1 || wireType !== WireType.LengthDelimited) {
      r.skip(wireType, field);
      continue;
    }
    const end = r.uint32() + r.pos;
    let name = "";
    let value = 0;
    while (r.pos < end) {
      const [f, w] = r.tag();
      if (f === 1 && w === WireType.LengthDelimited) name = r.string();
      else if (f === 2 && w === WireType.Varint) value = int64ToNumber(r.int64());
      else r.skip(w, f);
    }
    addUserCounter(out, name, value);
  }
  return out;
}
