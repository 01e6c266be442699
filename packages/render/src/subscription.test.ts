import { createRequire } from "node:module";
import Ajv from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { SUBSCRIPTION_FORMATS, type SubscriptionFormat } from "./client-rules";
import { parseShareLink, parseSubscriptionBody } from "./parse-links";
import { renderSubscription, type SubscriptionInput } from "./subscription";
import { combinationNode, makeSubscriber, NOW, wireguardNode } from "./test-fixtures";
import type { Subscriber } from "./types";

const schema = createRequire(import.meta.url)("meta-json-schema/schemas/meta-json-schema.json");
const validateClashSchema = new Ajv({ strict: false }).compile(schema);

const nodes = [combinationNode("v2ray"), wireguardNode()];
const input = (subscriber: Subscriber, extra: Partial<SubscriptionInput> = {}): SubscriptionInput => ({
  subscriber,
  nodes,
  now: NOW,
  ...extra,
});

/** Every address:port a document would make the client dial, per format. */
function dialTargets(format: SubscriptionFormat, body: string): string[] {
  switch (format) {
    case "links":
    case "links-plain": {
      const links = format === "links" ? parseSubscriptionBody(body) : body.trim().split("\n");
      return links.map((l) => parseShareLink(l)).map((p) => `${p.address}:${p.port}`);
    }
    case "clash-meta":
      return parse(body).proxies.map((p: { server: string; port: number }) => `${p.server}:${p.port}`);
    case "sing-box": {
      const doc = JSON.parse(body);
      const outbounds = doc.outbounds.filter((o: { server?: string }) => o.server);
      return outbounds.map((o: { server: string; server_port: number }) => `${o.server}:${o.server_port}`);
    }
    case "xray-json":
      return JSON.parse(body).map(
        (c: { outbounds: Array<{ settings: { vnext: Array<{ address: string; port: number }> } }> }) => {
          const server = c.outbounds[0]?.settings.vnext[0];
          return `${server?.address}:${server?.port}`;
        },
      );
    case "wireguard":
      return [...body.matchAll(/^Endpoint = (.+)$/gm)].map((m) => m[1] ?? "");
    case "html":
      return [];
  }
}

describe.each<[string, Partial<Subscriber>, string]>([
  ["quota exhausted", { status: "limited" }, "Quota exhausted"],
  ["expired", { status: "expired" }, "Expired on 2026-04-15"],
  ["disabled", { status: "disabled" }, "Disabled"],
  [
    "active but over quota",
    { usage: { upload: 0, download: 200 * 1024 ** 3, total: 1024 ** 3, expireAt: null } },
    "Quota exhausted",
  ],
])("a %s subscriber", (_case, patch, reason) => {
  it.each(SUBSCRIPTION_FORMATS.filter((f) => f !== "html"))(
    "gets a valid %s document that connects only to 127.0.0.1:1 and says why",
    async (format) => {
      const result = await renderSubscription(format, input(makeSubscriber(patch)));
      expect(result.blockedReason).toBe(reason);
      expect(dialTargets(format, result.body)).toEqual(["127.0.0.1:1"]);
      expect(
        result.format === "links" ? parseSubscriptionBody(result.body).join("\n") : result.body,
      ).toContain(format === "links" || format === "links-plain" ? encodeURIComponent(reason) : reason);
      if (format === "clash-meta") expect(validateClashSchema(parse(result.body))).toBe(true);
    },
  );

  it("gets an HTML page with the reason and no links", async () => {
    const result = await renderSubscription("html", input(makeSubscriber(patch)));
    expect(result.body).toContain(reason);
    expect(result.body).not.toMatch(/vless:\/\/|wireguard:\/\//);
  });
});

describe("engines", () => {
  const targets = async (engines: Subscriber["engines"], format: SubscriptionFormat) =>
    dialTargets(format, (await renderSubscription(format, input(makeSubscriber({ engines })))).body);

  it("a subscriber without xray gets no Xray proxies, only WireGuard", async () => {
    expect(await targets(["wireguard"], "links-plain")).toEqual(["wg.example.com:51820"]);
    expect(await targets(["wireguard"], "xray-json")).toEqual(["127.0.0.1:1"]);
  });

  it("a subscriber without wireguard gets no WireGuard", async () => {
    const links = await targets(["xray"], "links-plain");
    expect(links).not.toContain("wg.example.com:51820");
    expect(links.length).toBe(combinationNode("v2ray").inbounds.length);
    expect(await targets(["xray"], "wireguard")).toEqual(["127.0.0.1:1"]);
  });

  it("a subscriber with no engines gets a 'No servers available' placeholder", async () => {
    const result = await renderSubscription("clash-meta", input(makeSubscriber({ engines: [] })));
    expect(parse(result.body).proxies.map((p: { name: string }) => p.name)).toEqual(["No servers available"]);
  });
});

describe("renderSubscription responses", () => {
  it.each(SUBSCRIPTION_FORMATS)("%s carries content-type and the subscription headers", async (format) => {
    const result = await renderSubscription(format, input(makeSubscriber(), { title: "My VPN" }));
    expect(result.headers["content-type"]).toBe(result.contentType);
    expect(result.headers["subscription-userinfo"]).toMatch(
      /^upload=\d+; download=\d+; total=\d+; expire=\d+$/,
    );
    expect(result.headers["profile-title"]).toBe("base64:TXkgVlBO");
    expect(result.headers["content-disposition"]).toMatch(format === "html" ? /^inline;/ : /^attachment;/);
  });

  it("the wireguard format serves the requested node's file under a wg-quick-safe name", async () => {
    const result = await renderSubscription("wireguard", input(makeSubscriber(), { nodeId: "node_wg" }));
    expect(result.fileName).toBe("Amsterdam_WG.conf");
    expect(result.body).toContain("Endpoint = wg.example.com:51820");
  });

  it("a stored template that no longer validates falls back to the default with a warning", async () => {
    const result = await renderSubscription(
      "sing-box",
      input(makeSubscriber(), { singboxTemplate: "{ broken" }),
    );
    expect(JSON.parse(result.body).outbounds[0].tag).toBe("Proxy");
    expect(result.warnings[0]).toContain("sing-box template invalid");
  });

  it("reports inbounds skipped as invalid for their core", async () => {
    const node = combinationNode("v2ray");
    const bad = { ...node.inbounds[0]!, tag: "bad", transport: { type: "grpc" as const, serviceName: "s" } };
    const result = await renderSubscription(
      "links",
      input(makeSubscriber(), { nodes: [{ ...node, inbounds: [bad] }] }),
    );
    expect(result.skipped).toEqual([
      { nodeId: "node_v2ray", tag: "bad", errors: [expect.objectContaining({ field: "transport.type" })] },
    ]);
  });
});
