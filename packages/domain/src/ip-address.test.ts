import { isIP } from "node:net";
import { describe, expect, it } from "vitest";
import { DomainValidationError } from "./errors";
import { cidrContains, cidrsOverlap, formatCidr, formatIp, parseCidr, parseIp } from "./ip-address";

describe("parseIp / formatIp", () => {
  it.each([
    ["0.0.0.0", 0n],
    ["10.8.0.1", 0x0a080001n],
    ["255.255.255.255", 0xffffffffn],
  ])("IPv4 %s ↔ %s", (text, value) => {
    expect(parseIp(text)).toEqual({ family: 4, value });
    expect(formatIp(4, value)).toBe(text);
  });

  it.each([
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["FD00:0000:0000:0000:0000:0000:0000:0001", "fd00::1"],
    ["fd00:8:0:0:1:0:0:5", "fd00:8::1:0:0:5"], // first of two equal runs
    ["fd00:0:0:1:0:0:0:5", "fd00:0:0:1::5"], // the longest run, not the first
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
    ["64:ff9b::10.0.0.1", "64:ff9b::a00:1"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
  ])("IPv6 %s prints canonically as %s (RFC 5952)", (text, canonical) => {
    const ip = parseIp(text);
    expect(ip.family).toBe(6);
    expect(formatIp(6, ip.value)).toBe(canonical);
    expect(parseIp(canonical)).toEqual(ip);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "01.2.3.4",
    "1.2.3.-4",
    " 1 .2.3.4",
    ":::",
    "1:::2",
    "1::2::3",
    ":1::",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1::2:3:4:5:6:7:8",
    "12345::",
    "g::1",
    "1.2.3.4::",
    "::1.2.3.256",
    "fe80::1%eth0",
  ])("rejects %j with a validation error naming the field", (text) => {
    expect(() => parseIp(text, "endpoint")).toThrow(DomainValidationError);
    try {
      parseIp(text, "endpoint");
    } catch (e) {
      expect((e as DomainValidationError).field).toBe("endpoint");
    }
  });

  it("agrees with node:net on which strings are addresses", () => {
    const samples = [
      "1::",
      "::1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7::",
      "::ffff:1.2.3.4",
      "1:2:3:4:5:6:7:8",
      "0:0::0:0",
    ];
    for (const s of samples) {
      expect(isIP(s), s).toBe(6);
      expect(() => parseIp(s)).not.toThrow();
    }
  });

  it("round-trips random IPv6 values through text", () => {
    let x = 0x9e3779b97f4a7c15n;
    for (let i = 0; i < 500; i++) {
      x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 128n) - 1n);
      // Zero out random hextets so compression paths are exercised.
      const v = x & ~(0xffffn << BigInt(16 * (i % 8))) & ~(0xffffn << BigInt(16 * ((i * 3) % 8)));
      const text = formatIp(6, v);
      expect(isIP(text)).toBe(6);
      expect(parseIp(text).value).toBe(v);
    }
  });

  it("formatIp rejects values outside the family", () => {
    expect(() => formatIp(4, 1n << 32n)).toThrow(RangeError);
    expect(() => formatIp(6, -1n)).toThrow(RangeError);
  });
});

describe("parseCidr", () => {
  it("parses both families", () => {
    expect(parseCidr("10.8.0.0/16")).toEqual({ family: 4, network: 0x0a080000n, prefix: 16 });
    expect(formatCidr(parseCidr("FD00:8:0::/64"))).toBe("fd00:8::/64");
    expect(formatCidr(parseCidr("0.0.0.0/0"))).toBe("0.0.0.0/0");
    expect(formatCidr(parseCidr("::/0"))).toBe("::/0");
  });

  it("rejects host bits and names the network that was probably meant", () => {
    expect(() => parseCidr("10.8.0.1/16", "ipv4")).toThrow(
      /ipv4: "10.8.0.1\/16" has host bits set; the network is 10.8.0.0\/16/,
    );
    expect(() => parseCidr("fd00::1/64")).toThrow(/the network is fd00::\/64/);
  });

  it.each(["10.8.0.0", "10.8.0.0/33", "fd00::/129", "10.8.0.0/", "10.8.0.0/016", "10.8.0.0/x", "x/8"])(
    "rejects %j",
    (text) => {
      expect(() => parseCidr(text, "pool")).toThrow(/^pool: /);
    },
  );
});

describe("containment and overlap", () => {
  const a = parseCidr("10.8.0.0/16");
  it("contains its own range and nothing outside it", () => {
    expect(cidrContains(a, parseIp("10.8.255.255"))).toBe(true);
    expect(cidrContains(a, parseIp("10.9.0.0"))).toBe(false);
    expect(cidrContains(a, parseIp("::a08:1"))).toBe(false);
  });

  it("nested blocks overlap, disjoint ones and other families do not", () => {
    expect(cidrsOverlap(a, parseCidr("10.8.128.0/17"))).toBe(true);
    expect(cidrsOverlap(parseCidr("10.8.128.0/17"), a)).toBe(true);
    expect(cidrsOverlap(a, parseCidr("10.9.0.0/16"))).toBe(false);
    expect(cidrsOverlap(parseCidr("::/0"), parseCidr("0.0.0.0/0"))).toBe(false);
  });
});
