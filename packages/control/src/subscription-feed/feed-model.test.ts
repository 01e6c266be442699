import { describe, expect, it } from "vitest";
import {
  clientAddresses,
  daysLeftKey,
  type EtagInputs,
  etagOf,
  type FeedNodeRow,
  feedNode,
  feedPool,
  ifNoneMatchHits,
  placementBlockOf,
  renderNodesFor,
  splitUsage,
  subscriberEngines,
  usageBucket,
  wireguardInterfaceIndex,
} from "./feed-model";

const GIB = 1024 ** 3;
const KEY = "2D+qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8=";

function row(over: Partial<FeedNodeRow> = {}): FeedNodeRow {
  return {
    id: "node_1",
    name: "Frankfurt",
    address: "de.example.com",
    core: "xray",
    engines: ["xray", "wireguard"],
    status: "active",
    inbounds: [
      {
        tag: "a",
        protocol: "vless",
        port: 443,
        transport: { type: "tcp" },
        security: { type: "none" },
        server: { tls: { certificateFile: "/secret" }, reality: { privateKeyEnc: "v1:x" } },
      },
    ],
    wireguard: { listenPort: 51820, addresses: ["10.80.0.1/12"], peersPerInterface: 1000 },
    wireguard_interfaces: [{ name: "wg0", publicKey: KEY, listenPort: 51820, peerCount: 3 }],
    ...over,
  };
}

describe("feedNode", () => {
  it("keeps the client-facing inbound and drops server-side settings", () => {
    const n = feedNode(row())!;
    expect(n.inbounds).toHaveLength(1);
    expect(n.inbounds[0]).not.toHaveProperty("server");
  });

  it("serves no inbounds when the node does not run Xray, no WireGuard when it does not run WireGuard", () => {
    expect(feedNode(row({ engines: ["wireguard"] }))!.inbounds).toEqual([]);
    expect(feedNode(row({ engines: ["xray"] }))!.wireguard).toBeNull();
  });

  it("a revoked node serves nobody", () => {
    expect(feedNode(row({ status: "revoked" }))).toBeNull();
  });

  it("takes the WireGuard key the agent reported, in either spelling; none reported → no WireGuard", () => {
    expect(feedNode(row())!.wireguard?.publicKey).toBe(KEY);
    const snake = row({ wireguard_interfaces: [{ name: "wg0", public_key: KEY, listen_port: 51820 }] });
    expect(feedNode(snake)!.wireguard?.publicKey).toBe(KEY);
    expect(feedNode(row({ wireguard_interfaces: [] }))!.wireguard).toBeNull();
  });

  it("reads JSON columns that arrive as text", () => {
    const n = feedNode(
      row({ inbounds: JSON.stringify(row().inbounds), wireguard: JSON.stringify(row().wireguard) }),
    )!;
    expect(n.inbounds).toHaveLength(1);
    expect(n.wireguard?.basePort).toBe(51820);
  });

  it("dials the endpoint override when the node sits behind a forwarder", () => {
    const n = feedNode(
      row({
        wireguard: {
          listenPort: 51820,
          addresses: ["10.80.0.1/12"],
          endpointHost: "wg.example.com",
          endpointPort: 443,
        },
      }),
    )!;
    expect(n.wireguard).toMatchObject({ host: "wg.example.com", basePort: 443, peersPerInterface: 50_000 });
  });
});

describe("WireGuard placement (same rule as the agent)", () => {
  const wg = feedNode(row())!.wireguard!;

  it("uses the network of the interface's IPv4 address", () => {
    expect(placementBlockOf(["fd80::1/64", "10.80.0.1/12"])).toEqual({
      network: (10n << 24n) | (80n << 16n),
      prefix: 12,
    });
    expect(placementBlockOf(["fd80::1/64"])).toBeNull();
  });

  it("index = floor((client − network) / peersPerInterface), port = base + index", () => {
    expect(wireguardInterfaceIndex(wg, "10.80.0.2/32")).toBe(0);
    expect(wireguardInterfaceIndex(wg, "10.80.3.231/32")).toBe(0); // offset 999
    expect(wireguardInterfaceIndex(wg, "10.80.3.232/32")).toBe(1); // offset 1000
    expect(wireguardInterfaceIndex(wg, "10.80.39.16/32")).toBe(10);
    expect(wireguardInterfaceIndex(wg, null)).toBe(0);
    expect(wireguardInterfaceIndex(wg, "192.168.0.1/32")).toBe(0);
    const [node] = renderNodesFor([feedNode(row())!], new Set(["node_1"]), "10.80.3.232/32");
    expect(node?.wireguard?.port).toBe(51821);
  });

  it("only assigned nodes are rendered, in the tenant's order", () => {
    const a = feedNode(row({ id: "node_a", name: "A" }))!;
    const b = feedNode(row({ id: "node_b", name: "B" }))!;
    expect(renderNodesFor([a, b], new Set(["node_b"]), null).map((n) => n.name)).toEqual(["B"]);
  });
});

describe("addresses, engines, usage", () => {
  it("names both families with one offset", () => {
    const pool = feedPool({ id: "p", cidr_v4: "10.80.0.0/12", cidr_v6: "fd80::/64" }, 1);
    expect(clientAddresses(pool, 0n)).toEqual(["10.80.0.2/32", "fd80::2/128"]);
    expect(clientAddresses(pool, null)).toEqual([]);
    expect(clientAddresses(undefined, 3n)).toEqual([]);
  });

  it("engines: the subscription's set narrowed by the user's override", () => {
    expect(subscriberEngines(["xray", "wireguard"], null)).toEqual(["xray", "wireguard"]);
    expect(subscriberEngines(["xray", "wireguard"], ["xray"])).toEqual(["xray"]);
    expect(subscriberEngines(["xray"], ["wireguard"])).toEqual([]);
  });

  it("upload + download always add up to the bytes counted against the quota", () => {
    expect(splitUsage(1000n, 250n, 750n)).toEqual({ upload: 250, download: 750 });
    expect(splitUsage(100n, 250n, 750n)).toEqual({ upload: 25, download: 75 });
    expect(splitUsage(77n, 0n, 0n)).toEqual({ upload: 0, download: 77 });
  });

  it("usage buckets are 1 % of the quota (≥ 64 MiB), 1 GiB when unlimited", () => {
    const u = (used: number, total: number | null) => ({ upload: 0, download: used, total, expireAt: null });
    expect(usageBucket(u(GIB - 1, 100 * GIB))).toBe(0);
    expect(usageBucket(u(GIB + 1, 100 * GIB))).toBe(1);
    expect(usageBucket(u(63 * 1024 ** 2, GIB))).toBe(0);
    expect(usageBucket(u(65 * 1024 ** 2, GIB))).toBe(1);
    expect(usageBucket(u(3 * GIB, null))).toBe(3);
  });

  it("days left as the renderer rounds them", () => {
    const now = new Date("2026-03-01T12:00:00Z");
    expect(daysLeftKey(null, now)).toBe(-1);
    expect(daysLeftKey(new Date("2026-03-01T13:00:00Z"), now)).toBe(1);
    expect(daysLeftKey(new Date("2026-03-01T12:00:00Z"), now)).toBe(0);
  });
});

describe("ETag", () => {
  const base: EtagInputs = {
    subscriptionId: "sub_1",
    tokenHash: "ab",
    stamp: "d41d8cd98f00b204e9800998ecf8427e",
    usage: { upload: 0, download: 5 * GIB, total: 100 * GIB, expireAt: new Date("2026-04-01T00:00:00Z") },
    status: "active",
    format: "links",
    nodeId: null,
    settingsStamp: "s",
    now: new Date("2026-03-01T12:00:00Z"),
  };

  it("is a quoted strong tag and stable for equal inputs", () => {
    expect(etagOf(base)).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(etagOf({ ...base })).toBe(etagOf(base));
  });

  it.each<[string, Partial<EtagInputs>]>([
    [
      "stamp (revision, user, credentials, nodes, generation…)",
      { stamp: "0cc175b9c0f1b6a831c399e269772661" },
    ],
    ["format", { format: "clash-meta" }],
    ["node", { nodeId: "node_1" }],
    ["token", { tokenHash: "cd" }],
    ["status", { status: "disabled" }],
    ["settings", { settingsStamp: "t" }],
    ["usage bucket", { usage: { ...base.usage, download: 6 * GIB } }],
    ["quota", { usage: { ...base.usage, total: 200 * GIB } }],
    ["a day passing", { now: new Date("2026-03-02T12:00:01Z") }],
  ])("changes with the %s", (_what, change) => {
    expect(etagOf({ ...base, ...change })).not.toBe(etagOf(base));
  });

  it("does not change with usage inside a bucket or time inside a day", () => {
    expect(etagOf({ ...base, usage: { ...base.usage, download: 5 * GIB + 1000 } })).toBe(etagOf(base));
    expect(etagOf({ ...base, now: new Date("2026-03-01T12:30:00Z") })).toBe(etagOf(base));
  });

  it("changes the moment the quota is exhausted, even inside a bucket", () => {
    const total = 100 * GIB + 5;
    const under = { ...base, usage: { ...base.usage, download: 100 * GIB, total } };
    const over = { ...base, usage: { ...base.usage, download: 100 * GIB + 5, total } };
    expect(etagOf(under)).not.toBe(etagOf(over));
  });

  it("If-None-Match: lists, weak tags, *", () => {
    expect(ifNoneMatchHits('"a"', '"a"')).toBe(true);
    expect(ifNoneMatchHits('"x", W/"a"', '"a"')).toBe(true);
    expect(ifNoneMatchHits("*", '"a"')).toBe(true);
    expect(ifNoneMatchHits('"b"', '"a"')).toBe(false);
    expect(ifNoneMatchHits(undefined, '"a"')).toBe(false);
  });
});
