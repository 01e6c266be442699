import { describe, expect, it } from "vitest";
import {
  canonicalAllowedIps,
  extraRoutes,
  formatCidr,
  interfaceIndexFor,
  parseCidr,
  rangeToCidrs,
  slotRoutes,
} from "./placement";

const pool = parseCidr("10.8.0.0/16")!;
const config = { pool, peersPerInterface: 50_000, maxInterfaces: 4 };

describe("CIDR math", () => {
  it("parses, masks and formats IPv4 and IPv6", () => {
    expect(formatCidr(parseCidr("10.8.3.7/16")!)).toBe("10.8.0.0/16");
    expect(formatCidr(parseCidr("10.8.3.7")!)).toBe("10.8.3.7/32");
    expect(formatCidr(parseCidr("fd42::2/128")!)).toBe("fd42:0:0:0:0:0:0:2/128");
    for (const bad of ["10.8.0.256/32", "10.8.0.1/33", "fd42:::1/64", "1.2.3.4/x", "nope"])
      expect(parseCidr(bad)).toBeNull();
  });
  it("covers a range with the fewest aligned CIDRs", () => {
    const cover = (a: string, b: string) =>
      rangeToCidrs(parseCidr(a)!.network, parseCidr(b)!.network).map(formatCidr);
    expect(cover("10.0.0.0", "10.0.3.255")).toEqual(["10.0.0.0/22"]);
    expect(cover("10.0.0.1", "10.0.0.6")).toEqual([
      "10.0.0.1/32",
      "10.0.0.2/31",
      "10.0.0.4/31",
      "10.0.0.6/32",
    ]);
  });
  it("canonicalizes allowed-ip lists for comparison", () => {
    expect(canonicalAllowedIps(["fd42::2/128", "10.8.0.2", "10.8.0.2/32"])).toEqual([
      "10.8.0.2/32",
      "fd42:0:0:0:0:0:0:2/128",
    ]);
  });
});

describe("placement by address slot", () => {
  it("maps the first IPv4 in the pool to floor(offset / peersPerInterface)", () => {
    expect(interfaceIndexFor(config, ["10.8.0.2/32"])).toBe(0);
    expect(interfaceIndexFor(config, ["fd42::9/128", "10.8.195.80/32"])).toBe(1); // offset 50,000
    expect(interfaceIndexFor(config, ["10.8.195.79/32"])).toBe(0); // offset 49,999
    expect(interfaceIndexFor(config, ["192.168.1.0/24"])).toBe(0); // outside the pool
    expect(
      interfaceIndexFor({ ...config, peersPerInterface: 1000, maxInterfaces: 2 }, ["10.8.11.184/32"]),
    ).toMatch(/≥ max/);
  });
  it("routes each slot range on its interface; interface 0 relies on its address prefix", () => {
    expect(slotRoutes(config, 0)).toEqual([]);
    expect(slotRoutes({ ...config, peersPerInterface: 1024 }, 1).map(formatCidr)).toEqual(["10.8.4.0/22"]);
    // Offsets 50,000..65,535: the slot is clipped at the end of the /16 pool.
    expect(slotRoutes(config, 1).map(formatCidr)).toEqual([
      "10.8.195.80/28",
      "10.8.195.96/27",
      "10.8.195.128/25",
      "10.8.196.0/22",
      "10.8.200.0/21",
      "10.8.208.0/20",
      "10.8.224.0/19",
    ]);
    expect(slotRoutes(config, 2)).toEqual([]);
  });
  it("needs host routes only for allowed IPs outside the covered prefixes, never a /0", () => {
    const covered = slotRoutes({ ...config, peersPerInterface: 1024 }, 1);
    expect(extraRoutes(covered, ["10.8.4.9/32", "fd42::9/128", "0.0.0.0/0"])).toEqual([
      "fd42:0:0:0:0:0:0:9/128",
    ]);
  });
});
