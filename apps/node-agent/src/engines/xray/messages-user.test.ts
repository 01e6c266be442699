import { describe, expect, it } from "vitest";
import { V2RAY4, XRAY } from "./flavor";
import {
  accountMessage,
  encode,
  encodeAddUser,
  encodeRemoveUser,
  typedMessage,
  userMessage,
} from "./messages-user";

// Fixtures are built by hand from the field numbers in research/protocols.md §1:
// tag byte = field << 3 | wire type (0 varint, 2 length-delimited), then the length, then the bytes.
const ascii = (s: string) => [...Buffer.from(s)];
/** Length-delimited field (short lengths only, which is all these fixtures need). */
const ld = (field: number, bytes: number[]) => [(field << 3) | 2, bytes.length, ...bytes];
const str = (field: number, s: string) => ld(field, ascii(s));

describe("TypedMessage", () => {
  it("carries the bare full name (no type.googleapis.com/ prefix) and the value bytes", () => {
    expect([...encode(typedMessage("a.B", Uint8Array.of(0x08, 0x01)))]).toEqual([
      0x0a, 0x03, 0x61, 0x2e, 0x42, 0x12, 0x02, 0x08, 0x01,
    ]);
  });
  it("omits an empty value, as proto3 does", () => {
    expect([...encode(typedMessage("x", new Uint8Array()))]).toEqual([0x0a, 0x01, 0x78]);
  });
});

describe("accounts", () => {
  it("Trojan: v2ray prefix, password = 1", () => {
    const bytes = [...encode(accountMessage(V2RAY4, { protocol: "trojan", password: "pw" }))];
    expect(bytes).toEqual([...str(1, "v2ray.core.proxy.trojan.Account"), ...ld(2, [0x0a, 0x02, 0x70, 0x77])]);
  });
  it("VLESS: xray prefix, id = 1, flow = 2", () => {
    const bytes = [...encode(accountMessage(XRAY, { protocol: "vless", id: "u", flow: "f" }))];
    expect(bytes).toEqual([
      ...str(1, "xray.proxy.vless.Account"),
      ...ld(2, [...str(1, "u"), ...str(2, "f")]),
    ]);
  });
  it("VMess: alter_id = 2 only on v2ray 4.x (Xray removed the field)", () => {
    const v2 = [...encode(accountMessage(V2RAY4, { protocol: "vmess", id: "u", alterId: 4 }))];
    expect(v2).toEqual([...str(1, "v2ray.core.proxy.vmess.Account"), ...ld(2, [...str(1, "u"), 0x10, 0x04])]);
    const x = [...encode(accountMessage(XRAY, { protocol: "vmess", id: "u", alterId: 4 }))];
    expect(x).toEqual([...str(1, "xray.proxy.vmess.Account"), ...ld(2, str(1, "u"))]);
  });
  it("VMess alter_id 0 is the proto3 default and is not written", () => {
    const v2 = [...encode(accountMessage(V2RAY4, { protocol: "vmess", id: "u", alterId: 0 }))];
    expect(v2).toEqual([...str(1, "v2ray.core.proxy.vmess.Account"), ...ld(2, str(1, "u"))]);
  });
  it("Shadowsocks: cipher_type = 2 uses each core's own enum numbers", () => {
    const v2 = [
      ...encode(accountMessage(V2RAY4, { protocol: "shadowsocks", password: "p", method: "aes-256-gcm" })),
    ];
    expect(v2).toEqual([
      ...str(1, "v2ray.core.proxy.shadowsocks.Account"),
      ...ld(2, [...str(1, "p"), 0x10, 2]),
    ]);
    const x = [
      ...encode(
        accountMessage(XRAY, { protocol: "shadowsocks", password: "p", method: "chacha20-ietf-poly1305" }),
      ),
    ];
    expect(x).toEqual([...str(1, "xray.proxy.shadowsocks.Account"), ...ld(2, [...str(1, "p"), 0x10, 7])]);
  });
  it("rejects a cipher the core does not have", () => {
    expect(() =>
      encode(
        accountMessage(V2RAY4, { protocol: "shadowsocks", password: "p", method: "xchacha20-poly1305" }),
      ),
    ).toThrow(/not supported/);
  });
});

describe("User and AlterInbound operations", () => {
  const account = [...str(1, "v2ray.core.proxy.trojan.Account"), ...ld(2, [0x0a, 0x02, 0x70, 0x77])];
  it("User: level 0 omitted, email = 2, account = 3", () => {
    expect([...encode(userMessage(V2RAY4, "e", { protocol: "trojan", password: "pw" }))]).toEqual([
      ...str(2, "e"),
      ...ld(3, account),
    ]);
  });
  it("User: a non-zero level is field 1 varint", () => {
    expect(
      [...encode(userMessage(V2RAY4, "e", { protocol: "trojan", password: "pw" }, 1))].slice(0, 2),
    ).toEqual([0x08, 0x01]);
  });
  it("AddUserOperation inside AlterInboundRequest{tag = 1, operation = 2}", () => {
    const user = [...str(2, "e"), ...ld(3, account)];
    const op = [...str(1, "v2ray.core.app.proxyman.command.AddUserOperation"), ...ld(2, ld(1, user))];
    expect([...encodeAddUser(V2RAY4, "t", "e", { protocol: "trojan", password: "pw" })]).toEqual([
      ...str(1, "t"),
      ...ld(2, op),
    ]);
  });
  it("RemoveUserOperation{email = 1} with the Xray prefix", () => {
    const op = [...str(1, "xray.app.proxyman.command.RemoveUserOperation"), ...ld(2, str(1, "e"))];
    expect([...encodeRemoveUser(XRAY, "in", "e")]).toEqual([...str(1, "in"), ...ld(2, op)]);
  });
});
