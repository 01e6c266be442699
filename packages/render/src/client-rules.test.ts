import { describe, expect, it } from "vitest";
import { pickFormat, SUBSCRIPTION_FORMATS, type SubscriptionFormat } from "./client-rules";

// User-Agent strings as these clients send them (collected from client source and public issue
// reports); the point is the shape — name first, version, then platform noise.
const TABLE: Array<[string, SubscriptionFormat]> = [
  ["v2rayN/6.45", "links"],
  ["v2rayN/7.10.5", "links"],
  ["v2rayNG/1.8.19", "links"],
  ["v2rayNG/1.9.45", "links"],
  ["Streisand/2.3 CFNetwork/1494.0.7 Darwin/23.4.0", "links"],
  ["HiddifyNext/2.5.7 (android) like ClashMeta v2ray sing-box", "links"],
  ["Hiddify/2.0.5 (windows) like ClashMeta v2ray sing-box", "links"],
  ["Shadowrocket/2070 CFNetwork/1410.0.3 Darwin/22.6.0 iPhone14,5", "links"],
  ["Happ/1.63.2", "links"],
  ["clash-verge/v2.0.3", "clash-meta"],
  ["clash-verge/v1.3.8", "clash-meta"],
  ["ClashMetaForAndroid/2.10.1.Meta", "clash-meta"],
  ["ClashX Meta/v1.3.7 (com.metacubex.ClashX.meta; build:1.3.7; macOS 14.0.0) Alamofire/5.8.0", "clash-meta"],
  ["ClashX/1.118.0 (com.west2online.ClashX; build:1.118.0; macOS 14.0.0) Alamofire/5.8.0", "clash-meta"],
  ["ClashforWindows/0.20.39", "clash-meta"],
  ["clash.meta", "clash-meta"],
  ["clash-nyanpasu/v1.4.5", "clash-meta"],
  ["FlClash/v0.8.80 clash-verge Platform/android", "clash-meta"],
  ["mihomo/1.18.5", "clash-meta"],
  ["Stash/2.4.7 Clash/1.9.0", "clash-meta"],
  ["SFA/1.9.3 (Android 14; sing-box 1.9.3)", "sing-box"],
  ["SFI/1.8.0 (Build 1; sing-box 1.8.0; language en_US)", "sing-box"],
  ["SFM/1.10.1 (Build 2; sing-box 1.10.1; language en_US)", "sing-box"],
  ["SFT/1.10.0 (Build 1; sing-box 1.10.0)", "sing-box"],
  ["sing-box 1.11.4", "sing-box"],
  [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "html",
  ],
  [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "html",
  ],
  ["Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "html"],
  // A browser-like UA that also names a proxy client is an app's web view, not a person reading:
  // it gets the default, not the HTML page.
  ["Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36 clash-verge", "links"],
  ["curl/8.5.0", "links"],
  ["Go-http-client/1.1", "links"],
  ["", "links"],
];

describe("pickFormat by User-Agent", () => {
  it.each(TABLE)("%s → %s", (ua, format) => {
    expect(pickFormat(ua, undefined)).toMatchObject({ ok: true, format });
  });

  it("treats a missing User-Agent like an unknown client", () => {
    expect(pickFormat(undefined, undefined)).toMatchObject({ ok: true, format: "links" });
    expect(pickFormat(null, null)).toMatchObject({ ok: true, format: "links" });
  });
});

describe("pickFormat with ?format=", () => {
  it.each(SUBSCRIPTION_FORMATS)("explicit %s overrides the User-Agent", (format) => {
    expect(pickFormat("clash-verge/v2.0.3", format)).toEqual({
      ok: true,
      format,
      reason: "format parameter",
    });
  });

  it.each<[string, SubscriptionFormat]>([
    ["CLASH-META", "clash-meta"],
    ["clash", "clash-meta"],
    ["singbox", "sing-box"],
    ["v2ray", "links"],
    ["base64", "links"],
    ["v2ray-json", "xray-json"],
  ])("accepts the alias %s", (param, format) => {
    expect(pickFormat("curl/8", param)).toMatchObject({ ok: true, format });
  });

  it("an empty parameter falls back to the User-Agent", () => {
    expect(pickFormat("SFA/1.9.3", "")).toMatchObject({ ok: true, format: "sing-box" });
  });

  it("an unknown format is an error naming it and listing the allowed ones", () => {
    const choice = pickFormat("SFA/1.9.3", "surge");
    expect(choice.ok).toBe(false);
    if (choice.ok) return;
    expect(choice.error).toContain('"surge"');
    expect(choice.error).toContain("clash-meta");
    expect(choice.allowed).toEqual(SUBSCRIPTION_FORMATS);
  });
});
