import type { WireguardProxy, XrayProxy } from "./resolve-proxies";

// Blocked subscribers (quota, expiry, disabled) still get a document in the format their client
// asked for: a client that receives an error keeps the last good profile and keeps connecting,
// and the user never learns why it stopped working. A placeholder that points at 127.0.0.1:1
// connects nowhere and carries the reason as its name, which every client shows.

export const PLACEHOLDER_ADDRESS = "127.0.0.1";
/** Port 1 (tcpmux) is closed everywhere in practice, so the attempt fails at once. */
export const PLACEHOLDER_PORT = 1;
export const PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000";
export const NO_SERVERS_REASON = "No servers available";

// Throwaway keys made with `wg genkey` for placeholders only; they protect nothing. Real keys are
// not reused so a disabled subscriber's document carries no live credential. The peer key must not
// be the public half of the interface key: WireGuard silently drops a peer equal to itself.
const PLACEHOLDER_WG_PRIVATE_KEY = "CMM603rfJ3gAeGuI8TyuLVunqn/cgjQgLUK6MFu8H2E=";
const PLACEHOLDER_WG_PEER_PUBLIC_KEY = "jcoxCeToGxZspxJKd/j3WSIUdCc39J+lQnpa2njtwVE=";

/** A VLESS/tcp/no-TLS proxy: the one combination every client and both cores parse. */
export function placeholderXrayProxy(reason: string): XrayProxy {
  return {
    kind: "xray",
    name: reason,
    nodeId: "placeholder",
    core: "v2ray",
    protocol: "vless",
    address: PLACEHOLDER_ADDRESS,
    port: PLACEHOLDER_PORT,
    uuid: PLACEHOLDER_UUID,
    password: "",
    method: "",
    flow: "",
    transport: { type: "tcp", path: "", host: "", serviceName: "", headerType: "none", mode: "" },
    security: {
      type: "none",
      sni: "",
      alpn: [],
      fingerprint: "",
      allowInsecure: false,
      publicKey: "",
      shortId: "",
      spiderX: "",
    },
  };
}

/** A WireGuard peer at 127.0.0.1:1 with a documentation-range (TEST-NET-1) tunnel address. */
export function placeholderWireguardProxy(reason: string): WireguardProxy {
  return {
    kind: "wireguard",
    name: reason,
    nodeId: "placeholder",
    nodeName: reason,
    address: PLACEHOLDER_ADDRESS,
    port: PLACEHOLDER_PORT,
    serverPublicKey: PLACEHOLDER_WG_PEER_PUBLIC_KEY,
    privateKey: PLACEHOLDER_WG_PRIVATE_KEY,
    presharedKey: "",
    addresses: ["192.0.2.1/32"],
    // Only the placeholder's own address: importing it must not black-hole the device's traffic.
    allowedIps: ["192.0.2.0/32"],
    dns: [],
    mtu: null,
    persistentKeepalive: null,
  };
}
