import { describe, expect, it } from "vitest";
import { DomainValidationError } from "./errors";
import {
  crossesQuota,
  formatBytes,
  formatQuota,
  isExhausted,
  MAX_BYTES,
  parseSize,
  remainingBytes,
} from "./quota";

const GiB = 1024n ** 3n;

describe("remainingBytes / isExhausted", () => {
  it("an unlimited quota has no remaining count and is never spent", () => {
    expect(remainingBytes(null, 10n ** 18n)).toBeNull();
    expect(isExhausted(null, MAX_BYTES)).toBe(false);
  });

  it("counts the bytes left and never goes below zero after an overrun", () => {
    expect(remainingBytes(100n, 30n)).toBe(70n);
    expect(remainingBytes(100n, 100n)).toBe(0n);
    expect(remainingBytes(100n, 150n)).toBe(0n);
  });

  it("a quota is spent when usage reaches it exactly, and a zero quota is spent from the start", () => {
    expect(isExhausted(100n, 99n)).toBe(false);
    expect(isExhausted(100n, 100n)).toBe(true);
    expect(isExhausted(0n, 0n)).toBe(true);
  });

  it("stays exact beyond 2^53 bytes", () => {
    const quota = 2n ** 60n;
    expect(remainingBytes(quota, quota - 1n)).toBe(1n);
    expect(isExhausted(quota, quota - 1n)).toBe(false);
  });
});

describe("crossesQuota", () => {
  it("is true for the delta that reaches the quota", () => {
    expect(crossesQuota(100n, 90n, 10n)).toBe(true);
    expect(crossesQuota(100n, 90n, 500n)).toBe(true);
  });

  it("is false for a delta that stays below", () => {
    expect(crossesQuota(100n, 90n, 9n)).toBe(false);
  });

  it("fires once: a subscription already over does not cross again", () => {
    expect(crossesQuota(100n, 100n, 1n)).toBe(false);
    expect(crossesQuota(100n, 150n, 0n)).toBe(false);
  });

  it("never fires for an unlimited quota", () => {
    expect(crossesQuota(null, 0n, MAX_BYTES)).toBe(false);
  });

  it("a zero delta on a subscription at quota - 1 does not cross", () => {
    expect(crossesQuota(100n, 99n, 0n)).toBe(false);
  });

  it("rejects a negative delta (counters never go back)", () => {
    expect(() => crossesQuota(100n, 10n, -1n)).toThrow(RangeError);
  });
});

describe("formatBytes", () => {
  it.each([
    [0n, "0 B"],
    [1n, "1 B"],
    [1023n, "1023 B"],
    [1024n, "1 KiB"],
    [1536n, "1.5 KiB"],
    [10n * GiB, "10 GiB"],
    [(GiB * 3n) / 2n, "1.5 GiB"],
    [1024n ** 4n * 2n, "2 TiB"],
    [1024n ** 6n, "1 EiB"],
    [MAX_BYTES, "8 EiB"],
    [-1536n, "-1.5 KiB"],
  ])("%s bytes → %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it("rounds half up to the requested digits", () => {
    expect(formatBytes(1024n + 5n)).toBe("1 KiB"); // 1.0049
    expect(formatBytes(1024n + 6n)).toBe("1.01 KiB"); // 1.0059
    expect(formatBytes(1024n * 1024n * 12n + 1024n * 307n, 1)).toBe("12.3 MiB");
    expect(formatBytes(1536n, 0)).toBe("2 KiB");
  });

  it("moves up a unit when rounding reaches 1024 of the current one", () => {
    expect(formatBytes(1024n * 1024n - 1n)).toBe("1 MiB");
    expect(formatBytes(GiB - 1n, 6)).toBe("1023.999999 MiB");
  });

  it("rejects a silly number of digits", () => {
    expect(() => formatBytes(1n, 7)).toThrow(RangeError);
    expect(() => formatBytes(1n, 1.5)).toThrow(RangeError);
  });

  it("formatQuota says unlimited for null", () => {
    expect(formatQuota(null)).toBe("unlimited");
    expect(formatQuota(50n * GiB)).toBe("50 GiB");
  });
});

describe("parseSize", () => {
  it.each([
    ["0", 0n],
    ["1048576", 1048576n],
    ["512B", 512n],
    ["512 bytes", 512n],
    ["1k", 1024n],
    ["1KB", 1024n],
    ["1 KiB", 1024n],
    ["500 MiB", 500n * 1024n * 1024n],
    ["500mb", 500n * 1024n * 1024n],
    ["10GB", 10n * GiB],
    ["10 gib", 10n * GiB],
    ["  10G  ", 10n * GiB],
    ["1.5 GiB", (3n * GiB) / 2n],
    ["2TB", 2n * 1024n ** 4n],
    ["1 PiB", 1024n ** 5n],
    ["7 EiB", 7n * 1024n ** 6n],
  ])("%j → %s bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it("treats GB as binary, so a 10 GB plan shows as 10 GiB", () => {
    expect(formatBytes(parseSize("10GB"))).toBe("10 GiB");
  });

  it("rounds a fractional byte count down", () => {
    expect(parseSize("0.1 KiB")).toBe(102n); // 102.4
    expect(parseSize("1.9")).toBe(1n);
  });

  it("round-trips what formatBytes prints", () => {
    for (const bytes of [0n, 1n, 1024n, 10n * GiB, 1536n, 1024n ** 5n]) {
      expect(parseSize(formatBytes(bytes))).toBe(bytes);
    }
  });

  it.each([
    ["", "is empty"],
    ["   ", "is empty"],
    ["-1GB", "is not a size"],
    ["1e9", "is not a size"],
    ["GB", "is not a size"],
    ["10 GB extra", "is not a size"],
    ["1.GB", "is not a size"],
    ["10 XB", 'unknown unit "XB"'],
    ["10 gbit", "unknown unit"],
    ["8 EiB", "larger than the largest storable size"],
    ["1".repeat(41), "too long"],
  ])("rejects %j naming the field", (text, message) => {
    try {
      parseSize(text, "quota");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DomainValidationError);
      const err = e as DomainValidationError;
      expect(err.field).toBe("quota");
      expect(err.code).toBe("validation_failed");
      expect(err.message).toContain(message);
    }
  });

  it("accepts the largest storable size exactly", () => {
    expect(parseSize(MAX_BYTES.toString())).toBe(MAX_BYTES);
  });
});
