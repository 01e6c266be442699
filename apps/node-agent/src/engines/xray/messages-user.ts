// Hand-encoded protobuf for the user side of HandlerService (research/protocols.md §1.1, §1.2, §1.5).
// Only a handful of messages are needed, so a generated client would be all weight: these encoders
// follow proto3 rules (default values are omitted) exactly as the Go cores' marshaller does, which
// keeps the byte fixtures in the tests meaningful.

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type CoreFlavor, shadowsocksCipher, typeName } from "./flavor";

const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;

/** A message encoder: writes fields into `w`. Nested messages are written via fork/join. */
export type Fields = (w: BinaryWriter) => void;

export function encode(fields: Fields): Uint8Array {
  const w = new BinaryWriter();
  fields(w);
  return w.finish();
}

export function putString(w: BinaryWriter, field: number, value: string | undefined): void {
  if (value) w.tag(field, LEN).string(value);
}

export function putUint32(w: BinaryWriter, field: number, value: number | undefined): void {
  if (value) w.tag(field, VARINT).uint32(value);
}

export function putBool(w: BinaryWriter, field: number, value: boolean | undefined): void {
  if (value) w.tag(field, VARINT).bool(true);
}

/** Embedded message field. Written even when empty: presence matters for message fields. */
export function putMessage(w: BinaryWriter, field: number, fields: Fields): void {
  w.tag(field, LEN).fork();
  fields(w);
  w.join();
}

/** `TypedMessage { string type = 1; bytes value = 2; }` — type is the bare full name, no URL prefix. */
export function typedMessage(type: string, value: Uint8Array): Fields {
  return (w) => {
    putString(w, 1, type);
    if (value.length > 0) w.tag(2, LEN).bytes(value);
  };
}

export type Account =
  | { protocol: "vless"; id: string; flow?: string }
  | { protocol: "vmess"; id: string; alterId?: number }
  | { protocol: "trojan"; password: string }
  | { protocol: "shadowsocks"; password: string; method: string };

/** The account as the TypedMessage that goes into `User.account`. */
export function accountMessage(flavor: CoreFlavor, account: Account): Fields {
  switch (account.protocol) {
    case "vless":
      // encryption (field 3) left empty: v2ray's JSON forbids it on server clients, API accepts empty.
      return typedMessage(
        typeName(flavor, "proxy.vless.Account"),
        encode((w) => {
          putString(w, 1, account.id);
          putString(w, 2, account.flow);
        }),
      );
    case "vmess":
      return typedMessage(
        typeName(flavor, "proxy.vmess.Account"),
        encode((w) => {
          putString(w, 1, account.id);
          // Xray removed field 2 (v1.8.3); sending it there would be an unknown field, so only v2ray gets it.
          if (flavor.vmessAlterId) putUint32(w, 2, account.alterId);
        }),
      );
    case "trojan":
      return typedMessage(
        typeName(flavor, "proxy.trojan.Account"),
        encode((w) => putString(w, 1, account.password)),
      );
    case "shadowsocks":
      return typedMessage(
        typeName(flavor, "proxy.shadowsocks.Account"),
        encode((w) => {
          putString(w, 1, account.password);
          putUint32(w, 2, shadowsocksCipher(flavor, account.method));
        }),
      );
  }
}

/** `User { uint32 level = 1; string email = 2; TypedMessage account = 3; }` */
export function userMessage(flavor: CoreFlavor, email: string, account: Account, level = 0): Fields {
  return (w) => {
    putUint32(w, 1, level);
    putString(w, 2, email);
    putMessage(w, 3, accountMessage(flavor, account));
  };
}

/** AlterInboundRequest{tag, operation = TypedMessage(AddUserOperation{user})}. */
export function encodeAddUser(flavor: CoreFlavor, tag: string, email: string, account: Account): Uint8Array {
  const op = encode((w) => putMessage(w, 1, userMessage(flavor, email, account)));
  return encodeAlterInbound(tag, typedMessage(typeName(flavor, "app.proxyman.command.AddUserOperation"), op));
}

/** AlterInboundRequest{tag, operation = TypedMessage(RemoveUserOperation{email})}. */
export function encodeRemoveUser(flavor: CoreFlavor, tag: string, email: string): Uint8Array {
  const op = encode((w) => putString(w, 1, email));
  return encodeAlterInbound(
    tag,
    typedMessage(typeName(flavor, "app.proxyman.command.RemoveUserOperation"), op),
  );
}

/** `AlterInboundRequest { string tag = 1; TypedMessage operation = 2; }` */
export function encodeAlterInbound(tag: string, operation: Fields): Uint8Array {
  return encode((w) => {
    putString(w, 1, tag);
    putMessage(w, 2, operation);
  });
}
