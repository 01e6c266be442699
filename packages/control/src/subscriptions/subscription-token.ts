import { createHash } from "node:crypto";
import type { SecretBox } from "@vpnpanel/common";
import { newSubscriptionToken } from "@vpnpanel/domain";
// GET /sub/{token} decrypts with this context; one definition for writer and reader.
import { subscriptionTokenContext } from "../subscription-feed/user-configs";

// The secret in a subscription URL. Looked up by its SHA-256 (token_hash, unique); kept encrypted
// (token_enc, bound to the subscription id) so an admin can show the link again. Reissuing replaces
// both, which revokes the old URL at once.

export interface IssuedToken {
  token: string;
  hash: string;
  enc: string;
}

export const hashSubscriptionToken = (token: string) => createHash("sha256").update(token).digest("hex");

export function issueSubscriptionToken(box: SecretBox, subscriptionId: string): IssuedToken {
  const token = newSubscriptionToken();
  return {
    token,
    hash: hashSubscriptionToken(token),
    enc: box.encrypt(token, subscriptionTokenContext(subscriptionId)),
  };
}

export function openSubscriptionToken(box: SecretBox, subscriptionId: string, enc: string): string {
  return box.decrypt(enc, subscriptionTokenContext(subscriptionId));
}

export function subscriptionUrl(publicUrl: string, token: string): string {
  return `${publicUrl.replace(/\/+$/, "")}/sub/${token}`;
}
