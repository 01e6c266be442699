// Builders for the commands that change peers. Upserts go through `wg addconf FILE` (a 0600 temp file):
// it carries preshared keys without putting them on argv, has no argv size limit, and leaves other
// peers alone (unlike setconf, which recreates every peer and zeroes their counters). Removals go
// through `wg set IF peer K remove …`, chunked: one call tops out around 19k peers (E2BIG at the
// 2 MiB ARG_MAX, research/limits.md §4), so 10k per call keeps a wide margin.

export interface PeerSpec {
  publicKey: string;
  presharedKey?: string | null | undefined;
  allowedIps: readonly string[];
}

export const PEERS_PER_CALL = 10_000;

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * `[Peer]` sections for `wg addconf`. AllowedIPs in a config file replace the peer's list (the parser
 * sets REPLACE_ALLOWEDIPS), so an upsert converges. A missing PresharedKey line leaves an existing PSK
 * in place — clearing one is done separately with `presharedKeyClearArgs`.
 */
export function addconfText(peers: readonly PeerSpec[]): string {
  const out: string[] = [];
  for (const p of peers) {
    out.push("[Peer]", `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) out.push(`PresharedKey = ${p.presharedKey}`);
    // An empty AllowedIPs line still clears the list, which is what an empty set means.
    out.push(`AllowedIPs = ${p.allowedIps.join(", ")}`, "");
  }
  return out.join("\n");
}

/** `wg set` argv removing the given peers from one interface, one call per chunk. */
export function removeArgs(iface: string, publicKeys: readonly string[]): string[][] {
  return chunk(publicKeys, PEERS_PER_CALL).map((keys) => [
    "set",
    iface,
    ...keys.flatMap((k) => ["peer", k, "remove"]),
  ]);
}

/** `wg set` argv clearing the PSK of peers (reading /dev/null sets an all-zero key, i.e. none). */
export function presharedKeyClearArgs(iface: string, publicKeys: readonly string[]): string[][] {
  return chunk(publicKeys, PEERS_PER_CALL).map((keys) => [
    "set",
    iface,
    ...keys.flatMap((k) => ["peer", k, "preshared-key", "/dev/null"]),
  ]);
}

/** Lines for `ip -batch -` (run with -force so one stale route doesn't abort the rest). */
export function routeBatch(verb: "replace" | "del", iface: string, cidrs: readonly string[]): string {
  return cidrs.map((c) => `route ${verb} ${c} dev ${iface}`).join("\n");
}
