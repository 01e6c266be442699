import { describe, expect, it } from "vitest";
import { DomainValidationError } from "./errors";
import {
  addressAt,
  addressesAt,
  capacity,
  createPool,
  offsetOf,
  reservedAddresses,
  validatePoolDefinition,
} from "./ip-pool";

describe("IPv4 pools", () => {
  const pool = createPool("10.8.0.0/24");

  it("excludes the network, the broadcast and the node's own .1", () => {
    expect(capacity(pool)).toBe(253n);
    expect(addressAt(pool, 0)).toBe("10.8.0.2");
    expect(addressAt(pool, 252n)).toBe("10.8.0.254");
    expect(reservedAddresses(pool)).toEqual(["10.8.0.1"]);
  });

  it("maps every offset to an address and back", () => {
    for (let o = 0n; o < capacity(pool); o++) expect(offsetOf(pool, addressAt(pool, o))).toBe(o);
  });

  it("answers null for addresses that are not assignable", () => {
    for (const a of ["10.8.0.0", "10.8.0.1", "10.8.0.255", "10.8.1.2", "fd00::2"])
      expect(offsetOf(pool, a)).toBeNull();
  });

  it("refuses offsets outside the pool", () => {
    expect(() => addressAt(pool, -1)).toThrow(RangeError);
    expect(() => addressAt(pool, 253)).toThrow(RangeError);
    expect(() => addressAt(pool, 1.5)).toThrow(RangeError);
  });

  it("crosses octet boundaries in larger pools", () => {
    const big = createPool("10.8.0.0/16", 3);
    expect(capacity(big)).toBe(65_536n - 2n - 3n);
    expect(addressAt(big, 0)).toBe("10.8.0.4");
    expect(addressAt(big, 252)).toBe("10.8.1.0");
    expect(addressAt(big, capacity(big) - 1n)).toBe("10.8.255.254");
    expect(reservedAddresses(big)).toEqual(["10.8.0.1", "10.8.0.2", "10.8.0.3"]);
  });

  it("a /30 with the server reserved holds exactly one client; a /31 holds none", () => {
    const p30 = createPool("192.168.7.0/30");
    expect(capacity(p30)).toBe(1n);
    expect(addressAt(p30, 0)).toBe("192.168.7.2");
    expect(() => createPool("192.168.7.0/31", 1, "ipv4")).toThrow(
      /ipv4: 192.168.7.0\/31 leaves no assignable address/,
    );
  });

  it("reserved hosts may be zero", () => {
    expect(addressAt(createPool("10.0.0.0/24", 0), 0)).toBe("10.0.0.1");
  });

  it("rejects a nonsensical reserved count", () => {
    expect(() => createPool("10.0.0.0/24", -1)).toThrow(RangeError);
    expect(() => createPool("10.0.0.0/24", 1.5)).toThrow(RangeError);
  });
});

describe("IPv6 pools", () => {
  const pool = createPool("fd00:8::/64");

  it("has 2^64 minus the subnet-router anycast and the reserved host", () => {
    expect(capacity(pool)).toBe(2n ** 64n - 2n);
  });

  it("maps offsets without enumerating, up to the last address", () => {
    expect(addressAt(pool, 0)).toBe("fd00:8::2");
    expect(addressAt(pool, 0xfffen)).toBe("fd00:8::1:0");
    expect(addressAt(pool, capacity(pool) - 1n)).toBe("fd00:8::ffff:ffff:ffff:ffff");
    expect(offsetOf(pool, "fd00:8::ffff:ffff:ffff:ffff")).toBe(capacity(pool) - 1n);
    expect(offsetOf(pool, "FD00:0008:0000:0000:0000:0000:0001:0000")).toBe(0xfffen);
    expect(offsetOf(pool, "fd00:8::1")).toBeNull();
    expect(offsetOf(pool, "fd00:9::2")).toBeNull();
  });

  it("an offset larger than Number.MAX_SAFE_INTEGER stays exact", () => {
    const o = 2n ** 60n + 12345n;
    expect(offsetOf(pool, addressAt(pool, o))).toBe(o);
  });

  it("throws on malformed address text instead of answering null", () => {
    expect(() => offsetOf(pool, "fd00:8::zz", "address")).toThrow(DomainValidationError);
  });
});

describe("validatePoolDefinition", () => {
  it("accepts IPv4 alone and IPv4 with IPv6", () => {
    const v4 = validatePoolDefinition({ ipv4: "10.8.0.0/24" });
    expect(v4.ok && v4.value.capacity).toBe(253n);
    expect(v4.ok && v4.value.ipv6).toBeNull();
    const dual = validatePoolDefinition({ ipv4: "10.8.0.0/24", ipv6: "fd00:8::/64", reserved_hosts: 2 });
    expect(dual.ok && dual.value.capacity).toBe(252n);
  });

  it("one offset names both addresses of a dual-stack allocation", () => {
    const dual = validatePoolDefinition({ ipv4: "10.8.0.0/24", ipv6: "fd00:8::/64" });
    if (!dual.ok) throw new Error("expected a valid pool");
    expect(addressesAt(dual.value, 5)).toEqual({ ipv4: "10.8.0.7", ipv6: "fd00:8::7" });
    expect(() => addressesAt(dual.value, 253)).toThrow(RangeError);
  });

  it("the smaller family bounds a dual-stack pool", () => {
    const r = validatePoolDefinition({ ipv4: "10.8.0.0/16", ipv6: "fd00:8::/120" });
    expect(r.ok && r.value.capacity).toBe(256n - 1n - 1n);
  });

  it("reports every bad field at once, by the names the API uses", () => {
    const r = validatePoolDefinition(
      { ipv4: "fd00::/64", ipv6: "10.0.0.0/8", reserved_hosts: -2 },
      "wireguard_pool.",
    );
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues.map((i) => i.field)).toEqual([
      "wireguard_pool.reserved_hosts",
      "wireguard_pool.ipv4",
      "wireguard_pool.ipv6",
    ]);
    expect(!r.ok && r.issues[1]?.message).toBe("must be an IPv4 block, got IPv6");
  });

  it("names the field for a missing, malformed or exhausted block", () => {
    const cases = [
      [{ ipv4: "" }, "ipv4", /must be an IPv4 CIDR block like 10.8.0.0\/16/],
      [{ ipv4: "10.8.0.1/24" }, "ipv4", /host bits set/],
      [{ ipv4: "10.8.0.0/24", ipv6: "fd00::/128" }, "ipv6", /leaves no assignable address/],
      [{ ipv4: "10.8.0.0/30", reserved_hosts: 2 }, "ipv4", /after 2 reserved host/],
      [{ ipv4: 42 as unknown as string }, "ipv4", /must be an IPv4 CIDR block/],
    ] as const;
    for (const [def, field, message] of cases) {
      const r = validatePoolDefinition(def);
      expect(r.ok, JSON.stringify(def)).toBe(false);
      if (r.ok) continue;
      expect(r.issues).toHaveLength(1);
      expect(r.issues[0]?.field).toBe(field);
      expect(r.issues[0]?.message).toMatch(message);
    }
  });
});
