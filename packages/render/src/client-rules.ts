// The one place that decides which document a client gets. Rules are data so the table can be
// read, reviewed and tested as a whole; the first matching rule wins.

export const SUBSCRIPTION_FORMATS = [
  "links",
  "links-plain",
  "clash-meta",
  "sing-box",
  "xray-json",
  "wireguard",
  "html",
] as const;

export type SubscriptionFormat = (typeof SUBSCRIPTION_FORMATS)[number];

/**
 * Accepted `?format=` spellings besides the canonical names, including the client_type names
 * Marzban users already have in their bookmarks.
 */
const FORMAT_ALIASES: Record<string, SubscriptionFormat> = {
  base64: "links",
  v2ray: "links",
  plain: "links-plain",
  clash: "clash-meta",
  mihomo: "clash-meta",
  singbox: "sing-box",
  "v2ray-json": "xray-json",
  xray: "xray-json",
  wg: "wireguard",
};

interface ClientRule {
  /** Client family, for logs and tests. */
  client: string;
  /** Matched against the start of the User-Agent (clients put their own name first). */
  pattern: RegExp;
  format: SubscriptionFormat;
}

/**
 * Anchored at the start on purpose: Hiddify sends "HiddifyNext/2.5 (android) like ClashMeta v2ray
 * sing-box" and Stash sends "Stash/2.4 Clash/1.9", so a substring search would misfile both.
 * Order matters where one name prefixes another: specific Clash names come before the bare ^clash.
 */
export const CLIENT_RULES: readonly ClientRule[] = [
  { client: "hiddify", pattern: /^hiddify/i, format: "links" },
  { client: "v2rayng", pattern: /^v2rayng\b/i, format: "links" },
  { client: "v2rayn", pattern: /^v2rayn\b/i, format: "links" },
  { client: "streisand", pattern: /^streisand/i, format: "links" },
  { client: "shadowrocket", pattern: /^shadowrocket/i, format: "links" },
  { client: "happ", pattern: /^happ\//i, format: "links" },
  { client: "v2box", pattern: /^v2box/i, format: "links" },
  { client: "nekobox", pattern: /^neko(box|ray)/i, format: "links" },
  { client: "flclash", pattern: /^flclash/i, format: "clash-meta" },
  { client: "clash-verge", pattern: /^clash[-_ ]?verge/i, format: "clash-meta" },
  { client: "clash-meta", pattern: /^clash[-_. ]?meta/i, format: "clash-meta" },
  { client: "clashx-meta", pattern: /^clashx[-_ ]?meta/i, format: "clash-meta" },
  { client: "clash-nyanpasu", pattern: /^clash[-_ ]?nyanpasu/i, format: "clash-meta" },
  { client: "mihomo", pattern: /^mihomo/i, format: "clash-meta" },
  { client: "stash", pattern: /^stash\//i, format: "clash-meta" },
  // Remaining Clash family (ClashX, Clash for Windows/Android, …): the Clash-Meta document is the
  // only Clash dialect we render. A core of the discontinued non-Meta line refuses the whole file
  // when it contains vless; these apps ship Meta cores today, so that is accepted.
  { client: "clash", pattern: /^clash/i, format: "clash-meta" },
  { client: "sing-box", pattern: /^(sing-box|sfa|sfi|sfm|sft)\b/i, format: "sing-box" },
  { client: "karing", pattern: /^karing/i, format: "sing-box" },
];

/** Proxy-client names that can appear after a browser-like prefix; such a UA is not a human's browser. */
const CLIENT_TOKENS =
  /clash|mihomo|stash|sing-box|v2ray|xray|shadowrocket|streisand|hiddify|happ\/|karing|nekobox|quantumult|surge|loon/i;
const BROWSER = /^mozilla\/|\b(chrome|safari|firefox|edg|opera)\//i;

export type FormatChoice =
  | { ok: true; format: SubscriptionFormat; reason: string }
  | { ok: false; error: string; allowed: readonly SubscriptionFormat[] };

/** Canonical format for an explicit `?format=` value, or undefined when unknown. */
export function normalizeFormat(value: string): SubscriptionFormat | undefined {
  const v = value.trim().toLowerCase();
  if ((SUBSCRIPTION_FORMATS as readonly string[]).includes(v)) return v as SubscriptionFormat;
  return FORMAT_ALIASES[v];
}

/**
 * Picks the document format. An explicit `?format=` wins; an unknown one is an error rather than a
 * silent fallback, so a typo in a bookmarked URL is visible. Without it, the User-Agent decides;
 * browsers get the HTML page and anything unrecognised (curl, empty) gets base64 links, which
 * nearly every client can import.
 */
export function pickFormat(userAgent: string | null | undefined, formatParam?: string | null): FormatChoice {
  if (formatParam !== undefined && formatParam !== null && formatParam.trim() !== "") {
    const format = normalizeFormat(formatParam);
    if (format) return { ok: true, format, reason: "format parameter" };
    return {
      ok: false,
      error: `unknown format "${formatParam}"; use one of ${SUBSCRIPTION_FORMATS.join(", ")}`,
      allowed: SUBSCRIPTION_FORMATS,
    };
  }
  const ua = (userAgent ?? "").trim();
  for (const rule of CLIENT_RULES) {
    if (rule.pattern.test(ua)) return { ok: true, format: rule.format, reason: `client ${rule.client}` };
  }
  if (BROWSER.test(ua) && !CLIENT_TOKENS.test(ua)) return { ok: true, format: "html", reason: "browser" };
  return { ok: true, format: "links", reason: "default" };
}
