import { renderClashMeta, validateClashTemplate } from "./clash-template";
import type { SubscriptionFormat } from "./client-rules";
import { contentDispositionHeader, subscriptionHeaders } from "./headers";
import { renderHtmlPage } from "./html";
import { NO_SERVERS_REASON, placeholderWireguardProxy, placeholderXrayProxy } from "./placeholder";
import { type ResolvedProxy, resolveProxies, type SkippedEntry } from "./resolve-proxies";
import { linksBase64Body, linksPlainBody } from "./share-links";
import { renderSingbox, validateSingboxTemplate } from "./singbox-template";
import { describeErrors } from "./template-token";
import type { RenderNode, Subscriber } from "./types";
import { blockReason } from "./usage";
import { pickWireguardFile, wireguardConf } from "./wireguard-conf";
import { renderXrayJson, type XrayClientOptions } from "./xray-json";

export const CONTENT_TYPES: Record<SubscriptionFormat, string> = {
  links: "text/plain; charset=utf-8",
  "links-plain": "text/plain; charset=utf-8",
  "clash-meta": "text/yaml; charset=utf-8",
  "sing-box": "application/json; charset=utf-8",
  "xray-json": "application/json; charset=utf-8",
  wireguard: "text/plain; charset=utf-8",
  html: "text/html; charset=utf-8",
};

const EXTENSIONS: Record<SubscriptionFormat, string> = {
  links: ".txt",
  "links-plain": ".txt",
  "clash-meta": ".yaml",
  "sing-box": ".json",
  "xray-json": ".json",
  wireguard: ".conf",
  html: ".html",
};

export interface SubscriptionInput {
  subscriber: Subscriber;
  /** Nodes the subscriber is assigned to, in display order. */
  nodes: readonly RenderNode[];
  now: Date;
  /** Tenant's default remark template for hosts without their own. */
  remarkTemplate?: string;
  /** Tenant's Clash-Meta template (YAML); null/undefined = built-in default. */
  clashTemplate?: string | null;
  /** Tenant's sing-box template (JSON); null/undefined = built-in default. */
  singboxTemplate?: string | null;
  xray?: XrayClientOptions;
  /** `wireguard` format: the node whose .conf to return; default the first. */
  nodeId?: string;
  /** Profile title for clients and the HTML page; default the display name. */
  title?: string;
  subscriptionUrl?: string;
  supportUrl?: string;
  updateIntervalHours?: number;
}

export interface RenderedSubscription {
  format: SubscriptionFormat;
  body: string;
  contentType: string;
  fileName: string;
  /** content-type plus the subscription headers (userinfo, title, interval, disposition). */
  headers: Record<string, string>;
  /** The reason the document connects nowhere, or null. */
  blockedReason: string | null;
  /** Inbounds/endpoints left out because they are invalid for their core; for the server log. */
  skipped: SkippedEntry[];
  /** Non-fatal problems (e.g. a stored template that no longer validates and was replaced). */
  warnings: string[];
}

function templateOrDefault(
  kind: string,
  template: string | null | undefined,
  validate: (text: string) => Array<{ field: string; message: string }>,
  warnings: string[],
): string | undefined {
  if (template === null || template === undefined) return undefined;
  const errors = validate(template);
  if (errors.length === 0) return template;
  // Templates are validated on save; a stored one failing now (e.g. after a rule change) must not
  // take every subscriber's profile down, so fall back to the built-in default and say so.
  warnings.push(`${kind} template invalid, default used:\n${describeErrors(errors)}`);
  return undefined;
}

/** Renders one subscription document with its response headers. Pure apart from the async QR work. */
export async function renderSubscription(
  format: SubscriptionFormat,
  input: SubscriptionInput,
): Promise<RenderedSubscription> {
  const { subscriber, now } = input;
  const warnings: string[] = [];
  const reason = blockReason(subscriber, now);
  const resolved = resolveProxies(subscriber, input.nodes, { now, remarkTemplate: input.remarkTemplate });
  const proxies: ResolvedProxy[] = reason ? [placeholderXrayProxy(reason)] : resolved.proxies;
  const usable = proxies.length > 0 ? proxies : [placeholderXrayProxy(NO_SERVERS_REASON)];
  let fileName = `${subscriber.displayName}${EXTENSIONS[format]}`;
  let body: string;
  switch (format) {
    case "links":
      body = linksBase64Body(usable);
      break;
    case "links-plain":
      body = `${linksPlainBody(usable)}\n`;
      break;
    case "clash-meta":
      body = renderClashMeta(
        usable,
        templateOrDefault("Clash", input.clashTemplate, validateClashTemplate, warnings),
      );
      break;
    case "sing-box":
      body = renderSingbox(
        usable,
        templateOrDefault("sing-box", input.singboxTemplate, validateSingboxTemplate, warnings),
      );
      break;
    case "xray-json":
      body = renderXrayJson(usable, input.xray);
      break;
    case "wireguard": {
      if (reason) {
        body = wireguardConf(placeholderWireguardProxy(reason));
        fileName = "blocked.conf";
      } else {
        const file = pickWireguardFile(proxies, input.nodeId);
        body = file.conf;
        fileName = file.fileName;
      }
      break;
    }
    case "html":
      body = await renderHtmlPage({
        subscriber,
        proxies: reason ? [] : resolved.proxies,
        now,
        blockReason: reason ?? (resolved.proxies.length === 0 ? NO_SERVERS_REASON : null),
        subscriptionUrl: input.subscriptionUrl,
        title: input.title,
      });
      break;
  }
  const headers: Record<string, string> = {
    "content-type": CONTENT_TYPES[format],
    ...subscriptionHeaders({
      usage: subscriber.usage,
      title: input.title ?? subscriber.displayName,
      fileName,
      updateIntervalHours: input.updateIntervalHours,
      webPageUrl: input.subscriptionUrl,
      supportUrl: input.supportUrl,
    }),
  };
  // A browser should show the page, not download it.
  if (format === "html") headers["content-disposition"] = contentDispositionHeader(fileName, "inline");
  return {
    format,
    body,
    contentType: CONTENT_TYPES[format],
    fileName,
    headers,
    blockedReason: reason,
    skipped: resolved.skipped,
    warnings,
  };
}
