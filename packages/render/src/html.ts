import { qrSvg } from "./qr";
import type { ResolvedProxy } from "./resolve-proxies";
import { shareLink } from "./share-links";
import type { Subscriber } from "./types";
import { daysLeft, effectiveStatus, formatBytes, formatDate, remainingBytes, usedBytes } from "./usage";
import { wireguardConf } from "./wireguard-conf";

// The page a human sees when opening the subscription URL in a browser. Every piece of text that
// comes from data (display name, remarks, links, configs) goes through escapeHtml; QR SVGs are
// generated from bits only. The CSP forbids scripts outright, so even a missed escape cannot run.

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

export interface HtmlPageInput {
  subscriber: Subscriber;
  /** Proxies as rendered for this subscriber (empty when blocked). */
  proxies: readonly ResolvedProxy[];
  now: Date;
  /** Why nothing connects, shown prominently; null for a working subscription. */
  blockReason: string | null;
  /** The subscription URL itself, shown with a QR so a phone app can import it. */
  subscriptionUrl?: string;
  title?: string;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;text-align:left;border-bottom:1px solid #ddd}
.blocked{background:#fde8e8;border:1px solid #e99;padding:.75rem;border-radius:.4rem}
.entry{border:1px solid #ddd;border-radius:.4rem;padding:.75rem;margin:1rem 0}
code,pre{word-break:break-all;white-space:pre-wrap;font-size:.85rem;background:#f6f6f6;padding:.25rem;display:block}
.qr svg{width:12rem;height:12rem}`;

function usageTable(input: HtmlPageInput): string {
  const { usage } = input.subscriber;
  const left = remainingBytes(usage);
  const days = daysLeft(usage, input.now);
  const rows: Array<[string, string]> = [
    ["Status", effectiveStatus(input.subscriber, input.now)],
    ["Used", formatBytes(usedBytes(usage))],
    ["Limit", usage.total === null ? "Unlimited" : formatBytes(usage.total)],
    ["Remaining", left === null ? "Unlimited" : formatBytes(left)],
    ["Expires", usage.expireAt === null ? "Never" : `${formatDate(usage.expireAt)} (${days} days left)`],
  ];
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("");
  return `<table>${body}</table>`;
}

async function entry(title: string, text: string, block: boolean): Promise<string> {
  const content = block ? `<pre>${escapeHtml(text)}</pre>` : `<code>${escapeHtml(text)}</code>`;
  return `<div class="entry"><h3>${escapeHtml(title)}</h3>${content}<div class="qr">${await qrSvg(text)}</div></div>`;
}

export async function renderHtmlPage(input: HtmlPageInput): Promise<string> {
  const name = input.subscriber.displayName;
  const title = input.title ?? name;
  const parts: string[] = [`<h1>${escapeHtml(title)}</h1>`, usageTable(input)];
  if (input.blockReason) parts.push(`<p class="blocked">${escapeHtml(input.blockReason)}</p>`);
  if (input.subscriptionUrl) {
    parts.push("<h2>Subscription</h2>", await entry("Import into your app", input.subscriptionUrl, false));
  }
  if (!input.blockReason && input.proxies.length > 0) {
    parts.push("<h2>Servers</h2>");
    for (const proxy of input.proxies) {
      if (proxy.kind === "wireguard") {
        parts.push(await entry(`${proxy.name} (WireGuard config)`, wireguardConf(proxy), true));
      } else {
        parts.push(await entry(proxy.name, shareLink(proxy), false));
      }
    }
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${parts.join("\n")}
</body>
</html>
`;
}
