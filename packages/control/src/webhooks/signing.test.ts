import { describe, expect, it } from "vitest";
import { retryDelaySeconds } from "./backoff";
import { newWebhookSecret, signatureHeader, verifySignature } from "./signing";

describe("webhook signatures", () => {
  it("verifies over timestamp + body and rejects tampering, other secrets and stale timestamps", () => {
    const secret = newWebhookSecret();
    const body = JSON.stringify({ event: "user.expired" });
    const header = signatureHeader(secret, 1_800_000_000, body);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifySignature(secret, header, body, 1_800_000_010)).toBe(true);
    expect(verifySignature(secret, header, `${body} `, 1_800_000_010)).toBe(false);
    expect(verifySignature(newWebhookSecret(), header, body, 1_800_000_010)).toBe(false);
    expect(verifySignature(secret, header, body, 1_800_001_000)).toBe(false);
    expect(verifySignature(secret, header.replace("t=1800000000", "t=1800000001"), body, 1_800_000_010)).toBe(
      false,
    );
  });
});

describe("retry backoff", () => {
  it("doubles from the base and stops at the cap", () => {
    expect([1, 2, 3, 4, 5].map((a) => retryDelaySeconds(a, 10, 60))).toEqual([10, 20, 40, 60, 60]);
    expect(retryDelaySeconds(100, 10, 3600)).toBe(3600);
  });
});
