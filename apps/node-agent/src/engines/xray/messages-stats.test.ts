import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import {
  decodeQueryStatsResponse,
  decodeSysStatsResponse,
  decodeUserTraffic,
  encodeQueryStats,
  parseUserTraffic,
} from "./messages-stats";

const ascii = (s: string) => [...Buffer.from(s)];
const ld = (field: number, bytes: number[]) => [(field << 3) | 2, bytes.length, ...bytes];

describe("QueryStats", () => {
  it("request: pattern = 1, reset = 2 (false is omitted)", () => {
    expect([...encodeQueryStats("user>>>")]).toEqual(ld(1, ascii("user>>>")));
    expect([...encodeQueryStats("u", true)]).toEqual([0x0a, 0x01, 0x75, 0x10, 0x01]);
  });
  it("response: repeated Stat{name = 1, value = 2 int64}, a zero value is absent", () => {
    const stat = (name: string, value: number[]) =>
      ld(1, [...ld(1, ascii(name)), ...(value.length ? [0x10, ...value] : [])]);
    const bytes = Uint8Array.from([
      ...stat("user>>>a>>>traffic>>>uplink", [0xac, 0x02]),
      ...stat("user>>>a>>>traffic>>>downlink", []),
      ...[0x7a, 0x01, 0x00], // unknown field 15 is skipped
    ]);
    expect(decodeQueryStatsResponse(bytes)).toEqual([
      { name: "user>>>a>>>traffic>>>uplink", value: 300 },
      { name: "user>>>a>>>traffic>>>downlink", value: 0 },
    ]);
  });
  it("decodes counters beyond 32 bits", () => {
    // 5_000_000_000 = 0x12A05F200 → varint 80 e4 97 d0 12
    const bytes = Uint8Array.from(ld(1, [...ld(1, ascii("x")), 0x10, 0x80, 0xe4, 0x97, 0xd0, 0x12]));
    expect(decodeQueryStatsResponse(bytes)[0]?.value).toBe(5_000_000_000);
  });
});

describe("GetSysStats", () => {
  it("maps the uint32/uint64 fields", () => {
    const bytes = Uint8Array.of(0x08, 0x13, 0x18, 0x98, 0x0f, 0x50, 0x05);
    expect(decodeSysStatsResponse(bytes)).toMatchObject({
      numGoroutine: 19,
      alloc: 1944,
      uptime: 5,
      numGC: 0,
    });
  });
});

describe("parseUserTraffic", () => {
  it("folds user>>>EMAIL>>>traffic>>>uplink|downlink into one entry per email and ignores the rest", () => {
    const map = parseUserTraffic([
      { name: "user>>>a@x>>>traffic>>>uplink", value: 10 },
      { name: "user>>>a@x>>>traffic>>>downlink", value: 20 },
      { name: "user>>>b>>>traffic>>>downlink", value: 5 },
      { name: "inbound>>>vless-in>>>traffic>>>uplink", value: 99 },
      { name: "user>>>c>>>online", value: 1 },
      { name: "user>>>>>>traffic>>>uplink", value: 7 },
      { name: "user>>>d>>>traffic>>>sideways", value: 7 },
    ]);
    expect([...map.values()]).toEqual([
      { email: "a@x", up: 10, down: 20 },
      { email: "b", up: 0, down: 5 },
    ]);
  });
});

describe("decodeUserTraffic", () => {
  it("gives what decodeQueryStatsResponse + parseUserTraffic give, in one pass", () => {
    const stats = [
      { name: "user>>>a@x>>>traffic>>>uplink", value: 10 },
      { name: "inbound>>>vless-in>>>traffic>>>uplink", value: 99 },
      { name: "user>>>a@x>>>traffic>>>downlink", value: 2 ** 40 },
      { name: "user>>>b>>>traffic>>>downlink", value: 0 },
      { name: "user>>>c>>>online", value: 1 },
    ];
    const w = new BinaryWriter();
    for (const s of stats) {
      w.tag(1, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(s.name);
      if (s.value) w.tag(2, WireType.Varint).int64(s.value);
      w.join();
    }
    const bytes = w.finish();
    expect(decodeUserTraffic(bytes)).toEqual(parseUserTraffic(decodeQueryStatsResponse(bytes)));
    expect([...decodeUserTraffic(bytes).values()]).toEqual([
      { email: "a@x", up: 10, down: 2 ** 40 },
      { email: "b", up: 0, down: 0 },
    ]);
  });
});
