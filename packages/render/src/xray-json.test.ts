import { describe, expect, it } from "vitest";
import { resolveProxies, type XrayProxy } from "./resolve-proxies";
import { combinationNode, makeSubscriber, NOW, wireguardNode } from "./test-fixtures";
import type { Core } from "./types";
import { renderXrayJson, xrayClientConfig } from "./xray-json";

/** The parts of a client config these tests read. */
interface ClientConfig {
  remarks: string;
  inbounds: Array<{ protocol: string; listen: string; port: number }>;
  outbounds: Array<{
    tag: string;
    settings: { vnext: Array<{ address: string; port: number; users: unknown[] }> };
    streamSettings: unknown;
  }>;
  routing: unknown;
}

function proxiesFor(core: Core) {
  return resolveProxies(makeSubscriber(), [combinationNode(core), wireguardNode()], { now: NOW }).proxies;
}

describe.each<Core>(["xray", "v2ray"])("Xray client JSON for a %s node", (core) => {
  const proxies = proxiesFor(core);
  const text = renderXrayJson(proxies);
  const configs = JSON.parse(text) as ClientConfig[];

  it("renders one full config per combination (golden)", async () => {
    await expect(text).toMatchFileSnapshot(`./__golden__/xray-json-${core}.json`);
  });

  it("leaves WireGuard out and names each config after its proxy", () => {
    const xray = proxies.filter((p) => p.kind === "xray");
    expect(configs.map((c) => c.remarks)).toEqual(xray.map((p) => p.name));
  });

  it("listens on loopback only and routes private ranges direct without geo files", () => {
    for (const config of configs) {
      expect(config.inbounds.map((i) => [i.protocol, i.listen, i.port])).toEqual([
        ["socks", "127.0.0.1", 10808],
        ["http", "127.0.0.1", 10809],
      ]);
      expect(config.outbounds.map((o) => o.tag)).toEqual(["proxy", "direct", "block"]);
      expect(JSON.stringify(config.routing)).not.toContain("geoip");
    }
  });
});

describe("Xray client JSON details", () => {
  it("uses configurable local ports", () => {
    const [proxy] = proxiesFor("xray") as XrayProxy[];
    if (!proxy) throw new Error("no proxy");
    const config = xrayClientConfig(proxy, { socksPort: 1080, httpPort: 8118 }) as unknown as ClientConfig;
    expect(config.inbounds.map((i) => i.port)).toEqual([1080, 8118]);
  });

  it("v2ray configs carry no Xray-only keys (fingerprint, reality, flow, grpc, host field)", () => {
    const text = renderXrayJson(proxiesFor("v2ray"));
    for (const key of ["fingerprint", "realitySettings", "flow", "grpcSettings", "xhttpSettings", '"host"']) {
      expect(text).not.toContain(key);
    }
    expect(text).toContain('"alterId": 0');
  });

  it("Xray configs carry REALITY and vision where the inbound has them", () => {
    const proxy = proxiesFor("xray").find((p) => p.name === "vless-tcp-reality-vision") as XrayProxy;
    const outbound = (xrayClientConfig(proxy) as unknown as ClientConfig).outbounds[0];
    expect(outbound?.settings.vnext[0]?.users[0]).toEqual({
      id: "7f3c1a52-9b4e-4d2a-8c61-2f0e5d9a7b13",
      encryption: "none",
      flow: "xtls-rprx-vision",
    });
    expect(outbound?.streamSettings).toEqual({
      network: "tcp",
      security: "reality",
      realitySettings: {
        serverName: "www.example.org",
        fingerprint: "firefox",
        publicKey: "2D-qFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8",
        shortId: "0123456789abcdef",
        spiderX: "/",
      },
    });
  });

  it("no Xray proxies at all still yields one loadable config with a named placeholder", () => {
    const configs = JSON.parse(renderXrayJson([])) as ClientConfig[];
    expect(configs.map((c) => c.remarks)).toEqual(["No servers available"]);
    expect(configs[0]?.outbounds[0]?.settings.vnext[0]).toMatchObject({ address: "127.0.0.1", port: 1 });
  });
});
