import { parseDocument, stringify } from "yaml";
import { clashProxies } from "./clash-meta";
import { NO_SERVERS_REASON, placeholderXrayProxy } from "./placeholder";
import { claimUniqueName, type ResolvedProxy } from "./resolve-proxies";
import { duplicates, expandToken, isPlainObject, isStringArray, PROXIES_TOKEN } from "./template-token";
import type { FieldError } from "./types";

/** Used when a tenant has no template: a manual `select` group, an automatic `url-test` group, MATCH. */
export const DEFAULT_CLASH_TEMPLATE = `mixed-port: 7890
allow-lan: false
mode: rule
log-level: warning
ipv6: true
proxies: []
proxy-groups:
  - name: Proxy
    type: select
    proxies: [Auto, "${PROXIES_TOKEN}"]
  - name: Auto
    type: url-test
    url: https://www.gstatic.com/generate_204
    interval: 300
    tolerance: 50
    proxies: ["${PROXIES_TOKEN}"]
rules:
  - MATCH,Proxy
`;

/** Policies mihomo defines itself; groups and rules may name them without declaring them. */
const BUILTIN_POLICIES = ["DIRECT", "REJECT", "REJECT-DROP", "PASS", "COMPATIBLE"];
const GROUP_TYPES = ["select", "url-test", "fallback", "load-balance", "relay"];

type Doc = Record<string, unknown>;

// In YAML an unquoted {{PROXIES}} is a nested flow mapping, not a string. Tenants will write it
// unquoted anyway, so quote it before parsing instead of rejecting a template that looks right.
const quoteToken = (text: string) => text.replace(/(?<!["'])\{\{PROXIES\}\}(?!["'])/g, `"${PROXIES_TOKEN}"`);

function parseTemplate(text: string): { doc: Doc | null; errors: FieldError[] } {
  const parsed = parseDocument(quoteToken(text), { logLevel: "silent", uniqueKeys: true });
  if (parsed.errors.length > 0) {
    return { doc: null, errors: parsed.errors.map((e) => ({ field: "template", message: e.message })) };
  }
  const doc: unknown = parsed.toJS({ maxAliasCount: 50 });
  if (!isPlainObject(doc))
    return { doc: null, errors: [{ field: "template", message: "must be a YAML mapping" }] };
  return { doc, errors: [] };
}

/** The policy a rule sends traffic to: last field, or the one before a trailing `no-resolve`/`src`. */
function ruleTarget(rule: string): string | null {
  if (rule.includes("(")) return null; // AND/OR/NOT/SUB-RULE nest commas; not worth a parser here
  const parts = rule.split(",").map((part) => part.trim());
  if (parts[0] === "MATCH") return parts[1] ?? null;
  const last = parts.length - 1;
  const target = parts[last] === "no-resolve" || parts[last] === "src" ? parts[last - 1] : parts[last];
  return parts.length >= 3 ? (target ?? null) : null;
}

function checkStructure(doc: Doc): FieldError[] {
  const errors: FieldError[] = [];
  const proxies = doc.proxies ?? [];
  const groups = doc["proxy-groups"];
  if (!Array.isArray(proxies)) errors.push({ field: "proxies", message: "must be a list" });
  else if (proxies.some((p) => !isPlainObject(p) || typeof p.name !== "string")) {
    errors.push({
      field: "proxies",
      message: `every static proxy needs a name; ${PROXIES_TOKEN} belongs in proxy-groups`,
    });
  }
  if (!Array.isArray(groups) || groups.length === 0) {
    errors.push({
      field: "proxy-groups",
      message: `must be a list with a group containing "${PROXIES_TOKEN}"`,
    });
  }
  if (doc.rules !== undefined && !isStringArray(doc.rules)) {
    errors.push({ field: "rules", message: "must be a list of strings" });
  }
  return errors;
}

/** Errors name the template field at fault; an empty list means rendering will use it as is. */
export function validateClashTemplate(text: string): FieldError[] {
  const { doc, errors } = parseTemplate(text);
  if (!doc) return errors;
  errors.push(...checkStructure(doc));
  if (errors.length > 0) return errors;
  const staticNames = (doc.proxies as Doc[] | undefined)?.map((p) => p.name as string) ?? [];
  const groups = doc["proxy-groups"] as unknown[];
  const groupNames: string[] = [];
  let tokenUsed = false;
  for (const [i, group] of groups.entries()) {
    const at = `proxy-groups[${i}]`;
    if (!isPlainObject(group) || typeof group.name !== "string" || group.name === "") {
      errors.push({ field: `${at}.name`, message: "every group needs a name" });
      continue;
    }
    groupNames.push(group.name);
    if (!GROUP_TYPES.includes(String(group.type))) {
      errors.push({ field: `${at}.type`, message: `type must be one of ${GROUP_TYPES.join(", ")}` });
    }
    if (group.proxies !== undefined && !isStringArray(group.proxies)) {
      errors.push({ field: `${at}.proxies`, message: "must be a list of names" });
    } else if (group.proxies?.includes(PROXIES_TOKEN)) tokenUsed = true;
  }
  if (!tokenUsed) {
    errors.push({
      field: "proxy-groups",
      message: `no group lists "${PROXIES_TOKEN}", so no proxy would be usable`,
    });
  }
  const known = new Set([...BUILTIN_POLICIES, ...staticNames, ...groupNames, PROXIES_TOKEN]);
  for (const name of duplicates([...staticNames, ...groupNames])) {
    errors.push({ field: "proxy-groups", message: `name "${name}" is used twice` });
  }
  for (const [i, group] of groups.entries()) {
    if (!isPlainObject(group) || !isStringArray(group.proxies)) continue;
    for (const member of group.proxies) {
      if (!known.has(member))
        errors.push({ field: `proxy-groups[${i}].proxies`, message: `unknown proxy "${member}"` });
    }
  }
  for (const [i, rule] of ((doc.rules as string[] | undefined) ?? []).entries()) {
    const target = ruleTarget(rule);
    if (target !== null && !known.has(target)) {
      errors.push({ field: `rules[${i}]`, message: `rule sends traffic to unknown policy "${target}"` });
    }
  }
  return errors;
}

/**
 * Builds the Clash-Meta document: the template's own proxies first, then ours, renamed where a
 * name clashes with the template's. Throws when the template is invalid (validate on save).
 */
export function buildClashDocument(
  proxies: readonly ResolvedProxy[],
  template = DEFAULT_CLASH_TEMPLATE,
): Doc {
  const errors = validateClashTemplate(template);
  if (errors.length > 0)
    throw new Error(`invalid Clash template: ${errors[0]?.field}: ${errors[0]?.message}`);
  const doc = parseTemplate(template).doc as Doc;
  const staticProxies = (doc.proxies as Doc[] | undefined) ?? [];
  const groups = doc["proxy-groups"] as Doc[];
  const taken = new Set([
    ...BUILTIN_POLICIES,
    ...staticProxies.map((p) => String(p.name)),
    ...groups.map((g) => String(g.name)),
  ]);
  // An empty group is a load error in mihomo; a named placeholder explains the empty profile instead.
  const entries = clashProxies(proxies);
  if (entries.length === 0) entries.push(...clashProxies([placeholderXrayProxy(NO_SERVERS_REASON)]));
  const ours = entries.map((entry) => ({ ...entry, name: claimUniqueName(String(entry.name), taken) }));
  const names = ours.map((entry) => entry.name);
  doc.proxies = [...staticProxies, ...ours];
  doc["proxy-groups"] = groups.map((group) =>
    isStringArray(group.proxies) ? { ...group, proxies: expandToken(group.proxies, names) } : group,
  );
  return doc;
}

export function renderClashMeta(proxies: readonly ResolvedProxy[], template?: string): string {
  // lineWidth 0: long values (keys, paths) stay on one line, which some older YAML readers need.
  return stringify(buildClashDocument(proxies, template), { lineWidth: 0 });
}
