// AddInbound / RemoveInbound bodies. Needed only for v2ray 4.x Shadowsocks, whose server is single-user:
// each user gets an inbound of their own (research/protocols.md §1.3, §1.6). The ReceiverConfig layout
// differs between the cores (v2ray: `port_range = 1`; Xray: `port_list = 1` of ranges), and the
// stream settings are left unset, which both cores treat as plain TCP.

import { isIP } from "node:net";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type CoreFlavor, typeName } from "./flavor";
import {
  type Account,
  encode,
  type Fields,
  putMessage,
  putString,
  putUint32,
  typedMessage,
  userMessage,
} from "./messages-user";

/** `v2ray.core.common.net.Network` / `xray.common.net.Network`. */
export const NETWORK = { tcp: 2, udp: 3 } as const;
export type NetworkName = keyof typeof NETWORK;

/** IPv4/IPv6 literal → raw bytes, for `IPOrDomain.ip`; null for anything else. */
export function ipBytes(address: string): Uint8Array | null {
  const family = isIP(address);
  if (family === 4) return Uint8Array.from(address.split(".").map(Number));
  if (family !== 6) return null;
  let text = address;
  const out = new Uint8Array(16);
  // Embedded IPv4 tail (::ffff:1.2.3.4): rewrite it as two hex groups first.
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4?.[1]) {
    const b = v4[1].split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[1].length)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = [
    ...headGroups,
    ...new Array<string>(8 - headGroups.length - tailGroups.length).fill("0"),
    ...tailGroups,
  ];
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

/** `IPOrDomain { oneof address { bytes ip = 1; string domain = 2; } }` */
function ipOrDomain(address: string): Fields {
  return (w) => {
    const bytes = ipBytes(address);
    if (bytes) w.tag(1, WireType.LengthDelimited).bytes(bytes);
    else putString(w, 2, address);
  };
}

function portRange(port: number): Fields {
  return (w) => {
    putUint32(w, 1, port);
    putUint32(w, 2, port);
  };
}

export function receiverConfig(flavor: CoreFlavor, listen: string, port: number): Fields {
  const body = encode((w) => {
    if (flavor.name === "xray") putMessage(w, 1, (pl) => putMessage(pl, 1, portRange(port)));
    else putMessage(w, 1, portRange(port));
    putMessage(w, 2, ipOrDomain(listen));
  });
  return typedMessage(typeName(flavor, "app.proxyman.ReceiverConfig"), body);
}

/** v2ray 4.x `proxy.shadowsocks.ServerConfig { bool udp_enabled = 1; User user = 2; repeated Network network = 3; }` */
export function singleUserShadowsocksServer(
  flavor: CoreFlavor,
  email: string,
  account: Extract<Account, { protocol: "shadowsocks" }>,
  networks: readonly NetworkName[],
): Fields {
  if (flavor.multiUserShadowsocks) {
    throw new Error(
      `${flavor.name} has multi-user Shadowsocks; use AlterInbound instead of one inbound per user`,
    );
  }
  const body = encode((w) => {
    putMessage(w, 2, userMessage(flavor, email, account));
    if (networks.length > 0) {
      // Packed repeated enum, as the Go marshaller emits it.
      w.tag(3, WireType.LengthDelimited).fork();
      for (const n of networks) w.int32(NETWORK[n]);
      w.join();
    }
  });
  return typedMessage(typeName(flavor, "proxy.shadowsocks.ServerConfig"), body);
}

/** `AddInboundRequest { InboundHandlerConfig inbound = 1; }`, `InboundHandlerConfig { tag = 1; receiver_settings = 2; proxy_settings = 3; }` */
export function encodeAddInbound(tag: string, receiver: Fields, proxy: Fields): Uint8Array {
  return encode((w) =>
    putMessage(w, 1, (h) => {
      putString(h, 1, tag);
      putMessage(h, 2, receiver);
      putMessage(h, 3, proxy);
    }),
  );
}

/** `RemoveInboundRequest { string tag = 1; }` */
export function encodeRemoveInbound(tag: string): Uint8Array {
  const w = new BinaryWriter();
  putString(w, 1, tag);
  return w.finish();
}
