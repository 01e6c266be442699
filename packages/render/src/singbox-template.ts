import { NO_SERVERS_REASON, placeholderXrayProxy } from "./placeholder";
import { claimUniqueName, type ResolvedProxy } from "./resolve-proxies";
import { singboxEntries } from "./singbox";
import { duplicates, expandToken, isPlainObject, isStringArray, PROXIES_TOKEN } from "./template-token";
import type { FieldError } from "./types";

/**
 * Used when a tenant has no template. Targets sing-box 1.11+ (rule actions, endpoints): a TUN
 * inbound for the mobile/desktop apps, a local mixed port, a manual selector and a urltest group.
 */
export const DEFAULT_SINGBOX_TEMPLATE = JSON.stringify(
  {
    log: { level: "warn", timestamp: true },
    inbounds: [
      {
        type: "tun",
        tag: "tun-in",
        address: ["172.19.0.1/30", "fdfe:dcba:9876::1/126"],
        auto_route: true,
        strict_route: true,
      },
      { type: "mixed", tag: "mixed-in", listen: "127.0.0.1", listen_port: 2080 },
    ],
    outbounds: [
      { type: "selector", tag: "Proxy", outbounds: ["Auto", PROXIES_TOKEN] },
      {
        type: "urltest",
        tag: "Auto",
        outbounds: [PROXIES_TOKEN],
        url: "https://www.gstatic.com/generate_204",
        interval: "5m",
      },
      { type: "direct", tag: "direct" },
    ],
    route: {
      rules: [
        { action: "sniff" },
        { protocol: "dns", action: "hijack-dns" },
        { ip_is_private: true, outbound: "direct" },
      ],
      final: "Proxy",
      auto_detect_interface: true,
    },
  },
  null,
  2,
);

type Json = Record<string, unknown>;
const GROUP_TYPES = ["selector", "urltest"];

function parseTemplate(text: string): { doc: Json | null; errors: FieldError[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { doc: null, errors: [{ field: "template", message: `not JSON: ${(err as Error).message}` }] };
  }
  if (!isPlainObject(doc))
    return { doc: null, errors: [{ field: "template", message: "must be a JSON object" }] };
  return { doc, errors: [] };
}

function taggedList(doc: Json, key: "outbounds" | "endpoints", errors: FieldError[]): Json[] {
  const list = doc[key] ?? [];
  if (!Array.isArray(list) || !list.every(isPlainObject)) {
    errors.push({ field: key, message: "must be a list of objects" });
    return [];
  }
  for (const [i, item] of list.entries()) {
    if (typeof item.type !== "string")
      errors.push({ field: `${key}[${i}].type`, message: "type is required" });
    if (item.tag !== undefined && typeof item.tag !== "string") {
      errors.push({ field: `${key}[${i}].tag`, message: "tag must be a string" });
    }
    if (item.tag === PROXIES_TOKEN)
      errors.push({ field: `${key}[${i}].tag`, message: "the placeholder is not a tag" });
  }
  return list;
}

/** Errors name the template field at fault; an empty list means rendering will use it as is. */
export function validateSingboxTemplate(text: string): FieldError[] {
  const { doc, errors } = parseTemplate(text);
  if (!doc) return errors;
  const outbounds = taggedList(doc, "outbounds", errors);
  const endpoints = taggedList(doc, "endpoints", errors);
  const tags = [...outbounds, ...endpoints]
    .map((o) => o.tag)
    .filter((t): t is string => typeof t === "string");
  for (const tag of duplicates(tags))
    errors.push({ field: "outbounds", message: `tag "${tag}" is used twice` });
  const known = new Set(tags);
  let tokenUsed = false;
  for (const [i, outbound] of outbounds.entries()) {
    if (!GROUP_TYPES.includes(String(outbound.type))) continue;
    const at = `outbounds[${i}]`;
    if (typeof outbound.tag !== "string") errors.push({ field: `${at}.tag`, message: "a group needs a tag" });
    if (!isStringArray(outbound.outbounds)) {
      errors.push({ field: `${at}.outbounds`, message: "must be a list of tags" });
      continue;
    }
    if (outbound.outbounds.includes(PROXIES_TOKEN)) tokenUsed = true;
    for (const member of outbound.outbounds) {
      if (member !== PROXIES_TOKEN && !known.has(member)) {
        errors.push({ field: `${at}.outbounds`, message: `unknown outbound "${member}"` });
      }
    }
    if (outbound.default !== undefined && !known.has(String(outbound.default))) {
      errors.push({ field: `${at}.default`, message: `unknown outbound "${String(outbound.default)}"` });
    }
  }
  if (!tokenUsed) {
    errors.push({
      field: "outbounds",
      message: `no selector/urltest lists "${PROXIES_TOKEN}", so no proxy would be usable`,
    });
  }
  const route = doc.route;
  if (route !== undefined && !isPlainObject(route))
    errors.push({ field: "route", message: "must be an object" });
  if (isPlainObject(route)) {
    if (route.final !== undefined && !known.has(String(route.final))) {
      errors.push({ field: "route.final", message: `unknown outbound "${String(route.final)}"` });
    }
    const rules = Array.isArray(route.rules) ? route.rules : [];
    for (const [i, rule] of rules.entries()) {
      if (isPlainObject(rule) && rule.outbound !== undefined && !known.has(String(rule.outbound))) {
        errors.push({
          field: `route.rules[${i}].outbound`,
          message: `unknown outbound "${String(rule.outbound)}"`,
        });
      }
    }
  }
  return errors;
}

/**
 * Builds the sing-box document: template outbounds/endpoints first, then ours, renamed where a tag
 * clashes with the template's. Throws when the template is invalid (validate on save).
 */
export function buildSingboxDocument(
  proxies: readonly ResolvedProxy[],
  template = DEFAULT_SINGBOX_TEMPLATE,
): Json {
  const errors = validateSingboxTemplate(template);
  if (errors.length > 0)
    throw new Error(`invalid sing-box template: ${errors[0]?.field}: ${errors[0]?.message}`);
  const doc = parseTemplate(template).doc as Json;
  const outbounds = (doc.outbounds as Json[] | undefined) ?? [];
  const endpoints = (doc.endpoints as Json[] | undefined) ?? [];
  const taken = new Set([...outbounds, ...endpoints].map((o) => String(o.tag)));
  let ours = singboxEntries(proxies);
  // An empty selector is a start-up error in sing-box; a named placeholder explains the empty profile.
  if (ours.outbounds.length + ours.endpoints.length === 0) {
    ours = singboxEntries([placeholderXrayProxy(NO_SERVERS_REASON)]);
  }
  const retag = (o: Json) => ({ ...o, tag: claimUniqueName(String(o.tag), taken) });
  const ourOutbounds = ours.outbounds.map(retag);
  const ourEndpoints = ours.endpoints.map(retag);
  const names = [...ourOutbounds, ...ourEndpoints].map((o) => String(o.tag));
  doc.outbounds = [
    ...outbounds.map((o) =>
      GROUP_TYPES.includes(String(o.type)) && isStringArray(o.outbounds)
        ? { ...o, outbounds: expandToken(o.outbounds, names) }
        : o,
    ),
    ...ourOutbounds,
  ];
  if (endpoints.length + ourEndpoints.length > 0) doc.endpoints = [...endpoints, ...ourEndpoints];
  return doc;
}

export function renderSingbox(proxies: readonly ResolvedProxy[], template?: string): string {
  return `${JSON.stringify(buildSingboxDocument(proxies, template), null, 2)}\n`;
}
