import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { AppError } from "@vpnpanel/common";

// Webhook targets are admin-supplied URLs the control plane will POST to: without a guard they reach
// the metadata service, the database or anything else on the internal network (SSRF). A URL must be
// https (http only when allowed), carry no credentials, and EVERY address its host resolves to must be
// public — checked when the endpoint is saved and again before each delivery, which then connects to
// exactly the addresses that were checked (a DNS answer that changes in between cannot slip through).

export interface UrlPolicy {
  allowHttp: boolean;
  allowPrivate: boolean;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

const blocked = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  blocked.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96], // NAT64: reaches IPv4 space through a translator
  ["64:ff9b:1::", 48],
  ["100::", 64], // discard
  ["2001::", 32], // Teredo
  ["2001:db8::", 32], // documentation
  ["2002::", 16], // 6to4
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
] as const)
  blocked.addSubnet(net, bits, "ipv6");

/** Whether an address is loopback, private, link-local or otherwise not a public unicast address. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family !== 6) return true;
  const lower = address.toLowerCase();
  // IPv4-mapped / -compatible forms are judged by the IPv4 address they carry.
  const mapped = /^(?:::ffff:|::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return blocked.check(mapped[1]!, "ipv4");
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hexMapped) {
    const hi = Number.parseInt(hexMapped[1]!, 16);
    const lo = Number.parseInt(hexMapped[2]!, 16);
    return blocked.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, "ipv4");
  }
  return blocked.check(address, "ipv6");
}

const invalid = (message: string) => new AppError("validation_failed", `url: ${message}`, { field: "url" });

/** Checks what can be checked without DNS; returns the parsed URL. */
export function checkUrlShape(raw: string, policy: UrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid("is not an absolute URL");
  }
  if (url.protocol !== "https:" && !(policy.allowHttp && url.protocol === "http:")) {
    throw invalid(
      policy.allowHttp ? "must use https or http" : "must use https (http is disabled: WEBHOOK_ALLOW_HTTP)",
    );
  }
  if (url.username || url.password) throw invalid("must not carry credentials; the body is signed instead");
  if (url.hash) throw invalid("must not have a #fragment");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!host) throw invalid("has no host");
  if (!policy.allowPrivate) {
    if (isIP(host) && isBlockedAddress(host)) {
      throw invalid(
        `${host} is a loopback, private or link-local address (allow with WEBHOOK_ALLOW_PRIVATE)`,
      );
    }
    if (/^localhost$|\.localhost$|\.local$|\.internal$/i.test(host)) {
      throw invalid(`${host} is a local name (allow with WEBHOOK_ALLOW_PRIVATE)`);
    }
  }
  return url;
}

export const systemResolver: Resolver = async (host) => {
  const r = await lookup(host, { all: true, verbatim: true });
  return r.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/** Resolves the URL's host and rejects it unless every address is allowed; returns the addresses. */
export async function resolveTarget(url: URL, policy: UrlPolicy, resolve: Resolver = systemResolver) {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const family = isIP(host);
  let addresses: ResolvedAddress[];
  if (family) addresses = [{ address: host, family: family === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      throw invalid(`host ${host} does not resolve`);
    }
  }
  if (addresses.length === 0) throw invalid(`host ${host} does not resolve`);
  if (!policy.allowPrivate) {
    const bad = addresses.find((a) => isBlockedAddress(a.address));
    if (bad) {
      throw invalid(
        `${host} resolves to ${bad.address}, a loopback, private or link-local address (allow with WEBHOOK_ALLOW_PRIVATE)`,
      );
    }
  }
  return addresses;
}
