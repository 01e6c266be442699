import { describe, expect, it } from "vitest";
import {
  contentDispositionHeader,
  profileTitleHeader,
  subscriptionHeaders,
  subscriptionUserinfoHeader,
} from "./headers";
import { makeSubscriber, NOW } from "./test-fixtures";
import type { Usage } from "./types";
import { blockReason, daysLeft, effectiveStatus, formatBytes, remainingBytes } from "./usage";

const GIB = 1024 ** 3;
const usage = (patch: Partial<Usage> = {}): Usage => ({
  upload: 1 * GIB,
  download: 2 * GIB,
  total: 10 * GIB,
  expireAt: new Date("2026-03-10T12:00:00Z"),
  ...patch,
});

describe("usage math", () => {
  it("remaining is total minus upload+download, never negative, null when unlimited", () => {
    expect(remainingBytes(usage())).toBe(7 * GIB);
    expect(remainingBytes(usage({ download: 20 * GIB }))).toBe(0);
    expect(remainingBytes(usage({ total: null }))).toBeNull();
  });

  it("days left round up, are 0 once expired and null when it never expires", () => {
    expect(daysLeft(usage(), NOW)).toBe(9);
    expect(daysLeft(usage({ expireAt: new Date(NOW.getTime() + 3_600_000) }), NOW)).toBe(1);
    expect(daysLeft(usage({ expireAt: new Date(NOW.getTime() - 1) }), NOW)).toBe(0);
    expect(daysLeft(usage({ expireAt: null }), NOW)).toBeNull();
  });

  it("formats bytes in binary units", () => {
    expect([0, 1023, 1536, 1.5 * GIB, 5 * 1024 * GIB].map(formatBytes)).toEqual([
      "0 B",
      "1023 B",
      "1.5 KiB",
      "1.5 GiB",
      "5 TiB",
    ]);
  });

  it("an 'active' subscriber past the quota or the date is treated as limited / expired", () => {
    expect(effectiveStatus(makeSubscriber({ usage: usage({ download: 9 * GIB }) }), NOW)).toBe("limited");
    expect(effectiveStatus(makeSubscriber({ usage: usage({ expireAt: NOW }) }), NOW)).toBe("expired");
    expect(effectiveStatus(makeSubscriber({ status: "on_hold", usage: usage() }), NOW)).toBe("on_hold");
  });

  it("block reasons say why, with the expiry date", () => {
    expect(blockReason(makeSubscriber({ status: "limited" }), NOW)).toBe("Quota exhausted");
    expect(
      blockReason(
        makeSubscriber({ status: "expired", usage: usage({ expireAt: new Date("2026-02-20T08:00:00Z") }) }),
        NOW,
      ),
    ).toBe("Expired on 2026-02-20");
    expect(blockReason(makeSubscriber({ status: "disabled" }), NOW)).toBe("Disabled");
    expect(blockReason(makeSubscriber(), NOW)).toBeNull();
  });
});

describe("subscription headers", () => {
  it("subscription-userinfo lists upload, download, total, expire; 0 means unlimited/never", () => {
    expect(subscriptionUserinfoHeader(usage())).toBe(
      `upload=${GIB}; download=${2 * GIB}; total=${10 * GIB}; expire=${Date.parse("2026-03-10T12:00:00Z") / 1000}`,
    );
    expect(subscriptionUserinfoHeader(usage({ total: null, expireAt: null }))).toBe(
      `upload=${GIB}; download=${2 * GIB}; total=0; expire=0`,
    );
  });

  it("profile-title is base64-prefixed so any characters survive", () => {
    expect(profileTitleHeader("My VPN")).toBe("base64:TXkgVlBO");
    expect(Buffer.from(profileTitleHeader("Мой VPN 🚀").slice(7), "base64").toString()).toBe("Мой VPN 🚀");
  });

  it("content-disposition has an ASCII filename and the exact UTF-8 name", () => {
    expect(contentDispositionHeader('al"ice 東京.yaml')).toBe(
      `attachment; filename="al_ice.yaml"; filename*=UTF-8''al%22ice%20%E6%9D%B1%E4%BA%AC.yaml`,
    );
  });

  it("every header value is a valid HTTP header value (no control characters)", () => {
    const headers = subscriptionHeaders({
      usage: usage(),
      title: "x\r\nSet-Cookie: a=b",
      fileName: "a\r\nb.txt",
    });
    for (const value of Object.values(headers)) expect(value).not.toMatch(/[\r\n]/);
    expect(headers["profile-update-interval"]).toBe("12");
  });
});
