import { describe, expect, it } from "vitest";
import { generateKeyPair } from "./keys";
import { type DesiredPeer, type DevicePeer, desiredPeerFor, planPeers } from "./peer-diff";
import { parseCidr } from "./placement";

const K = (n: number) => `${String.fromCharCode(65 + n).repeat(43)}=`;
const dev = (n: number, extra: Partial<DevicePeer> = {}): DevicePeer => ({
  publicKey: K(n),
  presharedKey: null,
  allowedIps: [`10.8.0.${n}/32`],
  index: 0,
  userId: `u${n}`,
  ...extra,
});
const want = (n: number, extra: Partial<DesiredPeer> = {}): DesiredPeer => ({
  userId: `u${n}`,
  publicKey: K(n),
  presharedKey: null,
  allowedIps: [`10.8.0.${n}/32`],
  index: 0,
  ...extra,
});
const device = (...peers: DevicePeer[]) => new Map(peers.map((p) => [p.publicKey, p]));
const keys = (...peers: DevicePeer[]) => new Map(peers.map((p) => [p.userId as string, p.publicKey]));

describe("planPeers", () => {
  it("an unchanged snapshot plans nothing", () => {
    const plan = planPeers(device(dev(1), dev(2)), keys(dev(1), dev(2)), [want(1), want(2)], "snapshot");
    expect(plan).toMatchObject({ upsert: [], remove: [], clearPsk: [], unchanged: ["u1", "u2"] });
  });
  it("snapshot removes undesired peers (with their owner for the final reading) and adds new ones", () => {
    const plan = planPeers(device(dev(1), dev(2)), keys(dev(1), dev(2)), [want(1), want(3)], "snapshot");
    expect(plan.remove).toEqual([{ publicKey: K(2), index: 0, userId: "u2" }]);
    expect(plan.removed).toEqual(["u2"]);
    expect(plan.added).toEqual(["u3"]);
  });
  it("upsert mode leaves other peers alone", () => {
    const plan = planPeers(device(dev(1), dev(2)), keys(dev(1), dev(2)), [want(3)], "upsert");
    expect(plan.remove).toEqual([]);
    expect(plan.upsert.map((p) => p.userId)).toEqual(["u3"]);
  });
  it("allowed-ip or PSK changes update in place; dropping a PSK also clears it explicitly", () => {
    const plan = planPeers(
      device(dev(1), dev(2, { presharedKey: K(9) })),
      keys(dev(1), dev(2)),
      [want(1, { allowedIps: ["10.8.0.100/32"] }), want(2)],
      "snapshot",
    );
    expect(plan.remove).toEqual([]);
    expect(plan.updated).toEqual(["u1", "u2"]);
    expect(plan.clearPsk.map((p) => p.userId)).toEqual(["u2"]);
  });
  it("a key change removes the old peer under the same user, then adds the new key", () => {
    const plan = planPeers(device(dev(1)), keys(dev(1)), [want(1, { publicKey: K(7) })], "upsert");
    expect(plan.remove).toEqual([{ publicKey: K(1), index: 0, userId: "u1" }]);
    expect(plan.upsert.map((p) => p.publicKey)).toEqual([K(7)]);
    expect(plan.updated).toEqual(["u1"]);
  });
  it("a peer whose address moved it to another interface is removed there and re-added", () => {
    const plan = planPeers(device(dev(1)), keys(dev(1)), [want(1, { index: 1 })], "upsert");
    expect(plan.remove).toEqual([{ publicKey: K(1), index: 0, userId: "u1" }]);
    expect(plan.upsert).toEqual([want(1, { index: 1 })]);
  });
  it("a public key claimed by two users is a conflict, not a silent takeover", () => {
    const plan = planPeers(device(), new Map(), [want(1), { ...want(1), userId: "u9" }], "snapshot");
    expect(plan.conflicts).toEqual([{ userId: "u9", error: "public key already used by u1" }]);
    expect(plan.added).toEqual(["u1"]);
  });
  it("adopted peers without a known owner are removed by a snapshot without an owner", () => {
    const plan = planPeers(device(dev(1, { userId: null })), new Map(), [], "snapshot");
    expect(plan.remove).toEqual([{ publicKey: K(1), index: 0, userId: null }]);
  });
});

describe("desiredPeerFor", () => {
  const pub = generateKeyPair().publicKey;
  const placement = { pool: parseCidr("10.8.0.0/16")!, peersPerInterface: 256, maxInterfaces: 4 };
  it("validates keys and addresses without echoing secrets", () => {
    const bad = desiredPeerFor(
      { id: "u", wireguard: { publicKey: pub, presharedKey: "secret-but-bad", allowedIps: [] } },
      placement,
    );
    expect(bad).toEqual({ userId: "u", error: "malformed preshared key" });
    expect(
      desiredPeerFor({ id: "u", wireguard: { publicKey: "x", allowedIps: [] } }, placement),
    ).toMatchObject({ error: "malformed public key" });
    expect(desiredPeerFor({ id: "u" }, placement)).toBeNull();
  });
  it("places by address slot and canonicalizes allowed ips", () => {
    expect(
      desiredPeerFor({ id: "u", wireguard: { publicKey: pub, allowedIps: ["10.8.1.5"] } }, placement),
    ).toEqual({
      userId: "u",
      publicKey: pub,
      presharedKey: null,
      allowedIps: ["10.8.1.5/32"],
      index: 1,
    });
  });
});
