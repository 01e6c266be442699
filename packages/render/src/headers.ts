import type { Usage } from "./types";

/**
 * `subscription-userinfo` as clients (Clash family, sing-box apps, v2rayN, Shadowrocket) parse it:
 * keys in this order, joined by "; ", 0 meaning unlimited / never. `expire` is unix seconds.
 */
export function subscriptionUserinfoHeader(usage: Usage): string {
  const expire = usage.expireAt === null ? 0 : Math.floor(usage.expireAt.getTime() / 1000);
  const parts = [
    `upload=${Math.trunc(usage.upload)}`,
    `download=${Math.trunc(usage.download)}`,
    `total=${usage.total === null ? 0 : Math.trunc(usage.total)}`,
    `expire=${expire}`,
  ];
  return parts.join("; ");
}

/** `profile-title`: the base64 form survives any bytes (emoji, CJK) that raw header values would not. */
export function profileTitleHeader(title: string): string {
  return `base64:${Buffer.from(title, "utf8").toString("base64")}`;
}

/** ASCII fallback for a file name: keeps letters, digits, "-", "_", "."; everything else becomes "_". */
export function asciiFileName(name: string, fallback = "subscription"): string {
  const cleaned = name
    .normalize("NFKD")
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._]+|_+$/g, "");
  return cleaned.length > 0 ? cleaned.slice(0, 64) : fallback;
}

/**
 * WireGuard apps and wg-quick name the tunnel after the file: the base must match
 * ^[a-zA-Z0-9_=+.-]{1,15}$ or the import is refused.
 */
export function wireguardFileName(nodeName: string): string {
  const base = asciiFileName(nodeName, "wg")
    .slice(0, 15)
    .replace(/[._-]+$/, "");
  return `${base.length > 0 ? base : "wg"}.conf`;
}

/**
 * `content-disposition` with an ASCII `filename` for old clients and an RFC 5987 `filename*` so
 * clients that name the profile after the file show the real (possibly non-ASCII) name.
 */
export function contentDispositionHeader(
  fileName: string,
  disposition: "attachment" | "inline" = "attachment",
) {
  const dot = fileName.lastIndexOf(".");
  const ext = dot > 0 ? fileName.slice(dot) : "";
  const base = dot > 0 ? fileName.slice(0, dot) : fileName;
  const ascii = `${asciiFileName(base)}${ext.replace(/[^A-Za-z0-9.]/g, "")}`;
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  return `${disposition}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export interface SubscriptionHeaderInput {
  usage: Usage;
  /** Profile name clients show; usually the tenant's brand or the subscriber's display name. */
  title: string;
  /** File name offered for download (see `downloadFileName` in subscription.ts). */
  fileName: string;
  /** How often clients should refetch, in hours. */
  updateIntervalHours?: number;
  /** Page with usage for humans (clients show it as a link). */
  webPageUrl?: string;
  supportUrl?: string;
}

/** Headers every subscription response carries, whatever the format (ETag/caching is the endpoint's job). */
export function subscriptionHeaders(input: SubscriptionHeaderInput): Record<string, string> {
  const headers: Record<string, string> = {
    "subscription-userinfo": subscriptionUserinfoHeader(input.usage),
    "profile-title": profileTitleHeader(input.title),
    "profile-update-interval": String(input.updateIntervalHours ?? 12),
    "content-disposition": contentDispositionHeader(input.fileName),
  };
  if (input.webPageUrl) headers["profile-web-page-url"] = input.webPageUrl;
  if (input.supportUrl) headers["support-url"] = input.supportUrl;
  return headers;
}
