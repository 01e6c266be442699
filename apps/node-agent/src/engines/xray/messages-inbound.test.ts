import { describe, expect, it } from "vitest";
import { V2RAY4, XRAY } from "./flavor";
import {
  encodeAddInbound,
  encodeRemoveInbound,
  ipBytes,
  receiverConfig,
  singleUserShadowsocksServer,
} from "./messages-inbound";
import { encode, typedMessage } from "./messages-user";

const ascii = (s: string) => [...Buffer.from(s)];
const ld = (field: number, bytes: number[]) => [(field << 3) | 2, bytes.length, ...bytes];
const str = (field: number, s: string) => ld(field, ascii(s));

describe("ipBytes", () => {
  it("encodes IPv4 as 4 bytes and IPv6 as 16", () => {
    expect([...(ipBytes("127.0.0.1") ?? [])]).toEqual([127, 0, 0, 1]);
    expect([...(ipBytes("::1") ?? [])]).toEqual([...new Array(15).fill(0), 1]);
    expect([...(ipBytes("2001:db8::ff00:42") ?? [])]).toEqual([
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x42,
    ]);
    expect([...(ipBytes("::ffff:1.2.3.4") ?? [])].slice(10)).toEqual([0xff, 0xff, 1, 2, 3, 4]);
    expect(ipBytes("example.com")).toBeNull();
  });
});

describe("ReceiverConfig", () => {
  it("v2ray: port_range = 1 {From = 1, To = 2}, listen = 2 {ip = 1}", () => {
    const body = [...ld(1, [0x08, 0x90, 0x4e, 0x10, 0x90, 0x4e]), ...ld(2, ld(1, [127, 0, 0, 1]))];
    expect([...encode(receiverConfig(V2RAY4, "127.0.0.1", 10000))]).toEqual([
      ...str(1, "v2ray.core.app.proxyman.ReceiverConfig"),
      ...ld(2, body),
    ]);
  });
  it("Xray: port_list = 1 {range = 1 {From, To}}; a hostname goes to IPOrDomain.domain = 2", () => {
    const body = [...ld(1, ld(1, [0x08, 0x50, 0x10, 0x50])), ...ld(2, str(2, "localhost"))];
    expect([...encode(receiverConfig(XRAY, "localhost", 80))]).toEqual([
      ...str(1, "xray.app.proxyman.ReceiverConfig"),
      ...ld(2, body),
    ]);
  });
});

describe("per-user Shadowsocks inbound (v2ray 4.x)", () => {
  it("ServerConfig{user = 2, network = 3 packed}", () => {
    const account = [...str(1, "v2ray.core.proxy.shadowsocks.Account"), ...ld(2, [...str(1, "p"), 0x10, 1])];
    const user = [...str(2, "e"), ...ld(3, account)];
    const fields = singleUserShadowsocksServer(
      V2RAY4,
      "e",
      { protocol: "shadowsocks", password: "p", method: "aes-128-gcm" },
      ["tcp", "udp"],
    );
    expect([...encode(fields)]).toEqual([
      ...str(1, "v2ray.core.proxy.shadowsocks.ServerConfig"),
      ...ld(2, [...ld(2, user), ...ld(3, [2, 3])]),
    ]);
  });
  it("is refused for Xray, whose Shadowsocks server is multi-user", () => {
    expect(() =>
      singleUserShadowsocksServer(
        XRAY,
        "e",
        { protocol: "shadowsocks", password: "p", method: "aes-128-gcm" },
        [],
      ),
    ).toThrow();
  });
  it("AddInboundRequest{inbound = 1 {tag = 1, receiver_settings = 2, proxy_settings = 3}}", () => {
    const r = typedMessage("R", Uint8Array.of(1));
    const p = typedMessage("P", Uint8Array.of(2));
    const handler = [
      ...str(1, "ss/u"),
      ...ld(2, [...str(1, "R"), ...ld(2, [1])]),
      ...ld(3, [...str(1, "P"), ...ld(2, [2])]),
    ];
    expect([...encodeAddInbound("ss/u", r, p)]).toEqual(ld(1, handler));
  });
  it("RemoveInboundRequest{tag = 1}", () => {
    expect([...encodeRemoveInbound("ss/u")]).toEqual(str(1, "ss/u"));
  });
});
