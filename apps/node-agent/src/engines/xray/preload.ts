// Users written into the core's config when the core is started (docs/adr/0010). A fresh core holds
// nobody, and adding 100k users through HandlerService costs one AlterInbound per user per inbound
// (~165 µs of agent CPU each: 90 s for VLESS + VMess + Trojan); the same users in the inbounds'
// `clients` arrays cost one config load (a few seconds). So whenever the driver starts a core anyway —
// a new base config, the agent's start, a restart after a crash — the users go in the config, and the
// API is used only for changes to a running core. A user change never restarts a core.
//
// One bad entry in a config stops the whole core from starting, whereas a bad API call fails one
// user. So only users the config loader is certain to accept are preloaded (valid id, well-formed
// credentials, no duplicate email or credential); the rest take the API path and fail individually.

import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import type { AgentUser, XrayCredentials } from "../types";
import { validateUserId } from "../user-diff";
import {
  buildCoreConfig,
  isPerUserInbound,
  type XrayBaseConfig,
  type XrayInboundDefinition,
} from "./base-config";
import type { CoreFlavor } from "./flavor";

export type XrayUser = AgentUser & { xray: XrayCredentials };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Users per write: bounds the size of the strings built while the config is streamed out. */
const CLIENTS_PER_WRITE = 1_000;

/** The inbounds whose users live in a `clients` array (all but v2ray's per-user Shadowsocks). */
export function sharedInbounds(
  flavor: CoreFlavor,
  inbounds: readonly XrayInboundDefinition[],
): XrayInboundDefinition[] {
  return inbounds.filter((def) => !isPerUserInbound(flavor, def));
}

/** One user as a `clients` entry of one shared inbound, the JSON twin of user-ops.ts accountFor(). */
export function clientEntry(
  flavor: CoreFlavor,
  def: XrayInboundDefinition,
  email: string,
  creds: XrayCredentials,
): Record<string, unknown> {
  // Level 0 is the policy level whose per-user counters the base config enables.
  switch (def.protocol) {
    case "vless":
      return { id: creds.uuid, email, level: 0, ...(def.vlessFlow ? { flow: def.vlessFlow } : {}) };
    case "vmess":
      return {
        id: creds.uuid,
        email,
        level: 0,
        ...(flavor.vmessAlterId ? { alterId: creds.vmessAlterId ?? 0 } : {}),
      };
    case "trojan":
      return { password: creds.trojanPassword, email, level: 0 };
    case "shadowsocks":
      return { password: creds.shadowsocksPassword, method: def.shadowsocksMethod, email, level: 0 };
  }
}

/** The credential a protocol keys its users by; duplicates would be refused (or silently re-mapped). */
function credentialKey(def: XrayInboundDefinition, creds: XrayCredentials): string {
  switch (def.protocol) {
    case "vless":
    case "vmess":
      return `uuid:${creds.uuid.toLowerCase()}`;
    case "trojan":
      return `trojan:${creds.trojanPassword}`;
    case "shadowsocks":
      return `ss:${creds.shadowsocksPassword}`;
  }
}

function wellFormed(def: XrayInboundDefinition, creds: XrayCredentials): boolean {
  switch (def.protocol) {
    case "vless":
    case "vmess":
      return UUID.test(creds.uuid);
    case "trojan":
      return creds.trojanPassword !== "";
    case "shadowsocks":
      return creds.shadowsocksPassword !== "";
  }
}

/**
 * The users the core's config can carry for these inbounds, in input order; a later duplicate id wins
 * (as in a diff), and a user sharing a credential with an earlier one is left to the API path.
 */
export function preloadable(
  flavor: CoreFlavor,
  inbounds: readonly XrayInboundDefinition[],
  users: readonly AgentUser[],
): XrayUser[] {
  const shared = sharedInbounds(flavor, inbounds);
  const byEmail = new Map<string, XrayUser>();
  for (const user of users) {
    if (!user.xray || validateUserId(user.id) !== null) continue;
    const email = user.id.toLowerCase();
    byEmail.delete(email);
    if (shared.every((def) => wellFormed(def, user.xray as XrayCredentials)))
      byEmail.set(email, user as XrayUser);
  }
  const taken = new Set<string>();
  const out: XrayUser[] = [];
  for (const user of byEmail.values()) {
    const keys = new Set(shared.map((def) => credentialKey(def, user.xray)));
    if ([...keys].some((key) => taken.has(key))) continue;
    for (const key of keys) taken.add(key);
    out.push(user);
  }
  return out;
}

const marker = (index: number) => `@@vpnpanel-clients-${index}@@`;

async function writeClients(
  fh: FileHandle,
  flavor: CoreFlavor,
  def: XrayInboundDefinition,
  users: Iterable<readonly [string, XrayCredentials]>,
): Promise<void> {
  let part: string[] = [];
  let first = true;
  const flush = async () => {
    if (part.length === 0) return;
    await fh.write(`${first ? "" : ",\n"}${part.join(",\n")}`);
    first = false;
    part = [];
  };
  await fh.write("[\n");
  for (const [email, creds] of users) {
    part.push(JSON.stringify(clientEntry(flavor, def, email, creds)));
    if (part.length >= CLIENTS_PER_WRITE) await flush();
  }
  await flush();
  await fh.write("\n]");
}

/**
 * Writes the core's config with `users` in the `clients` array of every shared inbound. The clients are
 * streamed out in slices, so 100k users never exist as one 30 MB string or 300k objects at once.
 * `users` is iterated once per shared inbound.
 */
export async function writeCoreConfig(
  path: string,
  flavor: CoreFlavor,
  base: XrayBaseConfig,
  users: Iterable<readonly [string, XrayCredentials]>,
): Promise<void> {
  const config = buildCoreConfig(flavor, base) as {
    inbounds: Array<{ tag: string; settings?: { clients?: unknown } }>;
  };
  const shared = sharedInbounds(flavor, base.inbounds);
  shared.forEach((def, index) => {
    const inbound = config.inbounds.find((i) => i.tag === def.tag);
    if (inbound?.settings) inbound.settings.clients = marker(index);
  });
  const pieces = JSON.stringify(config, null, 2).split(/"(@@vpnpanel-clients-\d+@@)"/);
  const fh = await open(path, "w", 0o600);
  try {
    for (const piece of pieces) {
      const index = shared.findIndex((_, i) => marker(i) === piece);
      const def = shared[index];
      if (def) await writeClients(fh, flavor, def, users);
      else await fh.write(piece);
    }
  } finally {
    await fh.close();
  }
}
