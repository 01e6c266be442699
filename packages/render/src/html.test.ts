import { describe, expect, it } from "vitest";
import { escapeHtml, renderHtmlPage } from "./html";
import { resolveProxies } from "./resolve-proxies";
import { combinationNode, makeSubscriber, NOW, wireguardNode } from "./test-fixtures";

const EVIL = `<script>alert(1)</script><img src=x onerror="alert(2)">'&`;

describe("HTML subscription page", () => {
  it("escapes the five HTML-significant characters", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });

  it("a hostile display name, remark and URL never reach the page as markup", async () => {
    const subscriber = makeSubscriber({ displayName: EVIL });
    const node = combinationNode("v2ray");
    const inbounds = node.inbounds.slice(0, 2).map((inbound) => ({ ...inbound, hosts: undefined }));
    const proxies = resolveProxies(subscriber, [{ ...node, inbounds }], {
      now: NOW,
      remarkTemplate: "{USERNAME}",
    }).proxies;
    const html = await renderHtmlPage({
      subscriber,
      proxies,
      now: NOW,
      blockReason: null,
      subscriptionUrl: `https://sub.example.com/sub/t?x="><script>alert(3)</script>`,
    });
    // The hostile text is present, but only as inert escaped text: no tag opens, no attribute quote closes.
    expect(html).not.toMatch(/<script|<img|onerror="/i);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain(`<h3>${"&lt;script&gt;alert(1)&lt;/script&gt;"}`);
    expect(html).toContain("default-src 'none'");
  });

  it("shows usage, expiry, status, each link and an inline SVG QR per entry", async () => {
    const subscriber = makeSubscriber();
    const proxies = resolveProxies(subscriber, [wireguardNode()], { now: NOW }).proxies;
    const html = await renderHtmlPage({
      subscriber,
      proxies,
      now: NOW,
      blockReason: null,
      subscriptionUrl: "https://sub.example.com/sub/abc",
    });
    for (const text of ["11.5 GiB", "100 GiB", "88.5 GiB", "2026-04-15 (45 days left)", "active", "[Peer]"]) {
      expect(html).toContain(text);
    }
    expect(html.match(/<svg/g)).toHaveLength(2);
  });

  it("a blocked subscriber sees the reason and no links", async () => {
    const subscriber = makeSubscriber({ status: "disabled" });
    const html = await renderHtmlPage({ subscriber, proxies: [], now: NOW, blockReason: "Disabled" });
    expect(html).toContain('<p class="blocked">Disabled</p>');
    expect(html).not.toContain("vless://");
    expect(html).not.toContain("<svg");
  });
});
