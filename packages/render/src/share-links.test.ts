import { describe, expect, it } from "vitest";
import { parseShareLink, parseSubscriptionBody } from "./parse-links";
import { type ResolvedProxy, resolveProxies, type XrayProxy } from "./resolve-proxies";
import { linksBase64Body, linksPlainBody, shareLink, vmessPayload } from "./share-links";
import { combinationNode, makeSubscriber, NOW, validCombinations, wireguardNode } from "./test-fixtures";
import type { Core, RenderNode } from "./types";

function proxiesFor(nodes: RenderNode[], subscriber = makeSubscriber()): ResolvedProxy[] {
  return resolveProxies(subscriber, nodes, { now: NOW }).proxies;
}

/** What a link is expected to carry: everything but the node id and core, which links do not name. */
function linkFields(p: ResolvedProxy) {
  if (p.kind === "wireguard") {
    const { kind, name, address, port, serverPublicKey, privateKey, presharedKey, addresses, mtu } = p;
    return { kind, name, address, port, serverPublicKey, privateKey, presharedKey, addresses, mtu };
  }
  const { nodeId: _nodeId, core: _core, ...rest } = p;
  return rest;
}

describe.each<Core>(["xray", "v2ray"])("share links for a %s node", (core) => {
  const proxies = proxiesFor([combinationNode(core)]) as XrayProxy[];

  it("renders every valid combination (golden)", async () => {
    expect(proxies.map((p) => p.name)).toEqual(validCombinations(core).map((c) => c.id));
    await expect(`${linksPlainBody(proxies)}\n`).toMatchFileSnapshot(`./__golden__/links-${core}.txt`);
  });

  it.each(proxies.map((p) => [p.name, p] as const))("%s round-trips through the parser", (_name, proxy) => {
    expect(parseShareLink(shareLink(proxy))).toEqual(linkFields(proxy));
  });
});

describe("v2ray-4.x links", () => {
  const proxies = proxiesFor([combinationNode("v2ray")]) as XrayProxy[];

  it("never carry flow, pbk, sid, fp or serviceName", () => {
    for (const p of proxies) {
      const link = shareLink(p);
      if (p.protocol === "vmess") {
        const payload = vmessPayload(p);
        expect(payload.fp, p.name).toBe("");
        expect(payload.tls, p.name).not.toBe("reality");
      } else {
        expect(link, p.name).not.toMatch(/[?&](flow|pbk|sid|fp|serviceName)=/);
      }
    }
  });

  it("a REALITY/gRPC/vision inbound on a v2ray node yields no link and is reported as skipped", () => {
    const node = combinationNode("v2ray");
    const xrayOnly = validCombinations("xray").filter((c) =>
      /reality|grpc|vision|xhttp|httpupgrade/.test(c.id),
    );
    const result = resolveProxies(makeSubscriber(), [{ ...node, inbounds: xrayOnly.map((c) => c.inbound) }], {
      now: NOW,
    });
    expect(result.proxies).toEqual([]);
    expect(result.skipped.map((s) => s.tag)).toEqual(xrayOnly.map((c) => c.id));
  });
});

describe("host overrides and names", () => {
  const node: RenderNode = {
    ...combinationNode("xray"),
    inbounds: [
      {
        tag: "vless-ws",
        protocol: "vless",
        port: 8080,
        transport: { type: "ws", path: "/ws", host: "origin.example.com" },
        security: { type: "tls", sni: "origin.example.com" },
        hosts: [
          { address: "2001:db8::7", remark: "v6 #1 & {USERNAME} 🚀" },
          {
            address: "cdn.example.net",
            port: 443,
            sni: "cdn.example.net",
            host: "cdn.example.net",
            path: "/cdn?ed=2048",
          },
        ],
      },
    ],
  };
  const proxies = proxiesFor([node]) as XrayProxy[];

  it("apply address, port, sni, host header and path per host", () => {
    expect(
      proxies.map((p) => [p.address, p.port, p.security.sni, p.transport.host, p.transport.path]),
    ).toEqual([
      ["2001:db8::7", 8080, "origin.example.com", "origin.example.com", "/ws"],
      ["cdn.example.net", 443, "cdn.example.net", "cdn.example.net", "/cdn?ed=2048"],
    ]);
  });

  it("bracket IPv6 literals and escape remarks, and still round-trip", () => {
    const link = shareLink(proxies[0] as XrayProxy);
    expect(link).toContain("@[2001:db8::7]:8080?");
    expect(link).toContain("#v6%20%231%20%26%20alice%20%F0%9F%9A%80");
    for (const p of proxies) expect(parseShareLink(shareLink(p))).toEqual(linkFields(p));
  });

  it("use the default remark template for hosts without one", () => {
    expect(proxies[1]?.name).toBe("Frankfurt [VLESS ws]");
  });
});

describe("WireGuard links and the base64 body", () => {
  const proxies = proxiesFor([combinationNode("v2ray"), wireguardNode()]);

  it("wireguard:// round-trips keys, addresses and mtu", () => {
    const wg = proxies.find((p) => p.kind === "wireguard");
    if (!wg) throw new Error("no WireGuard proxy");
    const link = shareLink(wg);
    expect(link).toMatchInlineSnapshot(
      `"wireguard://yMQ%2FQCZSAxA1zZRZpFLRS4vYoeA3pSIzpvr6OXC5slA%3D@wg.example.com:51820?publickey=2D%2BqFeSDlK6c5kowECsEvquCrpBs9NCnVGElYjtVyR8%3D&presharedkey=wIVWE20kNV2JZOs323wYpZ4lIjFqSb79VKwaiK6NgnY%3D&address=10.8.0.2%2F32%2Cfd42%3A42%3A42%3A%3A2%2F128&mtu=1420#Amsterdam%20WG%20%5BWIREGUARD%20udp%5D"`,
    );
    expect(parseShareLink(link)).toEqual(linkFields(wg));
  });

  it("the base64 body is one padded line that decodes to the links joined by \\n", () => {
    const body = linksBase64Body(proxies);
    expect(body).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    expect(parseSubscriptionBody(body)).toEqual(proxies.map(shareLink));
  });
});
