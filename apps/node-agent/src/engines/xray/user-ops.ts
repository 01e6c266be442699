// Adding and removing one user on one inbound, and the final reading at removal. All operations are
// idempotent: "already exists" on add and "not found" on remove are success, so a retried or
// re-applied batch converges instead of failing.

import type { UsageReading, XrayCredentials } from "../types";
import { type CoreApiClient, classifyCoreError } from "./api-client";
import { isPerUserInbound, perUserInboundTag, type XrayInboundDefinition } from "./base-config";
import type { CoreFlavor } from "./flavor";
import {
  encodeAddInbound,
  encodeRemoveInbound,
  receiverConfig,
  singleUserShadowsocksServer,
} from "./messages-inbound";
import { type Account, encodeAddUser, encodeRemoveUser } from "./messages-user";

export interface UserOpsContext {
  flavor: CoreFlavor;
  api: CoreApiClient;
}

export function accountFor(def: XrayInboundDefinition, creds: XrayCredentials): Account {
  switch (def.protocol) {
    case "vless":
      return { protocol: "vless", id: creds.uuid, ...(def.vlessFlow ? { flow: def.vlessFlow } : {}) };
    case "vmess":
      return { protocol: "vmess", id: creds.uuid, alterId: creds.vmessAlterId ?? 0 };
    case "trojan":
      return { protocol: "trojan", password: creds.trojanPassword };
    case "shadowsocks":
      return {
        protocol: "shadowsocks",
        password: creds.shadowsocksPassword,
        method: def.shadowsocksMethod ?? "",
      };
  }
}

async function removeInboundIfPresent(ctx: UserOpsContext, tag: string): Promise<void> {
  try {
    await ctx.api.removeInbound(encodeRemoveInbound(tag));
  } catch (error) {
    if (classifyCoreError(error) !== "inbound-not-found") throw error;
  }
}

export async function addUserToInbound(
  ctx: UserOpsContext,
  def: XrayInboundDefinition,
  userId: string,
  creds: XrayCredentials,
): Promise<void> {
  const account = accountFor(def, creds);
  if (isPerUserInbound(ctx.flavor, def) && account.protocol === "shadowsocks") {
    if (!creds.shadowsocksPort) throw new Error(`no shadowsocksPort for per-user inbound "${def.tag}"`);
    const tag = perUserInboundTag(def, userId);
    // v2ray 4.34 AddInbound with a taken tag replaces the map entry and leaks the old listener, so the
    // old inbound is always removed first (a no-op when absent).
    if (!ctx.flavor.addInboundRejectsDuplicateTag) await removeInboundIfPresent(ctx, tag);
    try {
      await ctx.api.addInbound(
        encodeAddInbound(
          tag,
          receiverConfig(ctx.flavor, def.listen ?? "0.0.0.0", creds.shadowsocksPort),
          singleUserShadowsocksServer(ctx.flavor, userId, account, def.shadowsocksNetworks ?? ["tcp"]),
        ),
      );
    } catch (error) {
      if (classifyCoreError(error) !== "already-exists") throw error;
    }
    return;
  }
  try {
    await ctx.api.alterInbound(encodeAddUser(ctx.flavor, def.tag, userId, account));
  } catch (error) {
    if (classifyCoreError(error) !== "already-exists") throw error;
  }
}

export async function removeUserFromInbound(
  ctx: UserOpsContext,
  def: XrayInboundDefinition,
  userId: string,
): Promise<void> {
  if (isPerUserInbound(ctx.flavor, def)) {
    await removeInboundIfPresent(ctx, perUserInboundTag(def, userId));
    return;
  }
  try {
    await ctx.api.alterInbound(encodeRemoveUser(ctx.flavor, def.tag, userId));
  } catch (error) {
    if (classifyCoreError(error) !== "user-not-found") throw error;
  }
}

/**
 * The final reading of a removed user, taken with read-and-zero on the user's own two counters.
 * The cores keep a removed user's counters alive, so without the zeroing a re-added user would resume
 * from the old value while the agent has dropped its baseline, and count the old bytes twice. The
 * zeroing is atomic with the read (the core returns the pre-reset value), so no byte falls between
 * "final" and "zero"; traffic of connections still open after removal starts a fresh count.
 * This is the only place counters are ever reset; readUsage never does.
 */
export async function takeFinalReading(
  ctx: UserOpsContext,
  userId: string,
  generation: string,
): Promise<UsageReading> {
  const [up, down] = await Promise.all([
    ctx.api.getStat(`user>>>${userId}>>>traffic>>>uplink`, true),
    ctx.api.getStat(`user>>>${userId}>>>traffic>>>downlink`, true),
  ]);
  return { userId, up, down, generation };
}
