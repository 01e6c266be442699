// Per-tenant Clash-Meta and sing-box templates are ordinary documents for the target client with
// one extension: the string "{{PROXIES}}" inside a proxy group's member list (Clash `proxy-groups[].proxies`,
// sing-box selector/urltest `outbounds`) stands for "all of this subscriber's proxies, in order".
// Everything else in the template is passed through untouched, so a tenant can add DNS, rules,
// extra groups or static proxies without us modelling them.

export const PROXIES_TOKEN = "{{PROXIES}}";

/**
 * Replaces each token entry in a member list with the proxy names. A list that mentions the token
 * twice gets the names once: duplicates in a group are an error in mihomo and sing-box.
 */
export function expandToken(members: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  let expanded = false;
  for (const member of members) {
    if (member !== PROXIES_TOKEN) out.push(member);
    else if (!expanded) {
      out.push(...names);
      expanded = true;
    }
  }
  return out;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** Names that appear twice in a list, in first-seen order. */
export function duplicates(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) dup.add(name);
    seen.add(name);
  }
  return [...dup];
}

/** Renders the template errors as one line each, for logs and API error details. */
export function describeErrors(errors: ReadonlyArray<{ field: string; message: string }>): string {
  return errors.map((e) => `${e.field}: ${e.message}`).join("\n");
}
