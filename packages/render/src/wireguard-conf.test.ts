import { createPrivateKey, createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { wireguardFileName } from "./headers";
import { placeholderWireguardProxy } from "./placeholder";
import { resolveProxies } from "./resolve-proxies";
import { makeSubscriber, NOW, wireguardNode } from "./test-fixtures";
import { pickWireguardFile, wireguardConf, wireguardFiles } from "./wireguard-conf";

const nodes = [
  wireguardNode(),
  wireguardNode({
    id: "node_wg2",
    name: "Tokyo — edge #2",
    wireguard: {
      host: "2001:db8::51",
      port: 443,
      publicKey: "M4uFwyAVbQj6ZrMQy/x7KFayxn+lpJvlvdqKid1bvi8=",
      allowedIps: ["10.0.0.0/8"],
    },
  }),
];

describe("WireGuard .conf", () => {
  const proxies = resolveProxies(makeSubscriber(), nodes, { now: NOW }).proxies;

  it("renders one file per node (golden)", async () => {
    const files = wireguardFiles(proxies);
    expect(files.map((f) => f.fileName)).toEqual(["Amsterdam_WG.conf", "Tokyo_edge_2.conf"]);
    const text = files.map((f) => `### ${f.fileName}\n${f.conf}`).join("\n");
    await expect(text).toMatchFileSnapshot("./__golden__/wireguard.conf.txt");
  });

  it("defaults AllowedIPs to a full tunnel, brackets IPv6 endpoints, omits unset optional keys", () => {
    const [first, second] = wireguardFiles(proxies);
    expect(first?.conf).toContain("AllowedIPs = 0.0.0.0/0, ::/0\n");
    expect(first?.conf).toContain("PresharedKey = wIVWE20kNV2JZOs323wYpZ4lIjFqSb79VKwaiK6NgnY=\n");
    expect(second?.conf).toContain("Endpoint = [2001:db8::51]:443\n");
    expect(second?.conf).not.toMatch(/^(DNS|MTU|PersistentKeepalive) =/m);
  });

  it("picks the requested node, else the first", () => {
    expect(pickWireguardFile(proxies, "node_wg2").nodeId).toBe("node_wg2");
    expect(pickWireguardFile(proxies).nodeId).toBe("node_wg");
  });

  it("a subscriber without the wireguard engine gets no WireGuard, only a placeholder file", () => {
    const xrayOnly = resolveProxies(makeSubscriber({ engines: ["xray"] }), nodes, { now: NOW }).proxies;
    expect(wireguardFiles(xrayOnly)).toEqual([]);
    expect(pickWireguardFile(xrayOnly).conf).toContain("# No servers available\n");
  });

  it("a remark cannot inject config lines through a newline", () => {
    const conf = wireguardConf({
      ...placeholderWireguardProxy("x\n[Peer]\nPublicKey = evil"),
      name: "x\n[Peer]",
    });
    expect(conf.match(/^\[Peer\]$/gm)).toHaveLength(1);
  });

  it("the placeholder's peer is not the interface itself (WireGuard would drop such a peer)", () => {
    const p = placeholderWireguardProxy("Disabled");
    // X25519 private key as PKCS#8 DER: fixed 16-byte prefix + the 32 raw bytes.
    const der = Buffer.concat([
      Buffer.from("302e020100300506032b656e04220420", "hex"),
      Buffer.from(p.privateKey, "base64"),
    ]);
    const jwk = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({
      format: "jwk",
    });
    const ownPublicKey = Buffer.from(jwk.x ?? "", "base64url").toString("base64");
    expect(ownPublicKey).toHaveLength(44);
    expect(p.serverPublicKey).not.toBe(ownPublicKey);
  });

  it("file names are valid wg-quick interface names", () => {
    for (const name of ["Amsterdam WG", "東京", "a-very-long-node-name-indeed", "...", "wg.0-"]) {
      expect(wireguardFileName(name)).toMatch(/^[a-zA-Z0-9_=+.-]{1,15}\.conf$/);
    }
  });
});
