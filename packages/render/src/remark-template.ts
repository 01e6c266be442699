import type { FieldError, Subscriber } from "./types";
import { daysLeft, effectiveStatus, formatBytes, formatDate, remainingBytes, usedBytes } from "./usage";

/** Variables an operator may use in a host's remark; anything else in braces is refused on save. */
export const REMARK_VARIABLES = [
  "USERNAME",
  "DATA_USAGE",
  "DATA_LEFT",
  "DATA_LIMIT",
  "DAYS_LEFT",
  "EXPIRE_DATE",
  "STATUS",
  "PROTOCOL",
  "TRANSPORT",
  "SECURITY",
  "NODE",
] as const;

export type RemarkVariable = (typeof REMARK_VARIABLES)[number];

export const DEFAULT_REMARK_TEMPLATE = "{NODE} [{PROTOCOL} {TRANSPORT}]";

// Any brace pair counts as a variable reference, so a typo like "{USERNAM}" or "{ username }" is an
// error instead of silently showing up verbatim in every client.
const PLACEHOLDER = /\{([^{}]*)\}/g;
const UNLIMITED = "∞";
const MAX_REMARK_LENGTH = 200;

function isVariable(name: string): name is RemarkVariable {
  return (REMARK_VARIABLES as readonly string[]).includes(name);
}

/** Errors name the offending variable; `field` is the caller's path to the template. */
export function validateRemarkTemplate(template: string, field = "remark"): FieldError[] {
  const errors: FieldError[] = [];
  if (template.trim().length === 0) errors.push({ field, message: "remark template is empty" });
  if (template.length > MAX_REMARK_LENGTH) {
    errors.push({ field, message: `remark template is longer than ${MAX_REMARK_LENGTH} characters` });
  }
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1] ?? "";
    if (!isVariable(name)) {
      errors.push({
        field,
        message: `unknown variable {${name}}; allowed: ${REMARK_VARIABLES.map((v) => `{${v}}`).join(", ")}`,
      });
    }
  }
  // A lone brace is almost always a typo of a variable; refusing it keeps the rule "braces = variable".
  const stripped = template.replace(PLACEHOLDER, "");
  if (/[{}]/.test(stripped)) errors.push({ field, message: "unbalanced '{' or '}' in remark template" });
  return errors;
}

export interface RemarkContext {
  subscriber: Subscriber;
  now: Date;
  nodeName: string;
  /** Upper-case protocol label: VLESS, VMESS, TROJAN, SHADOWSOCKS, WIREGUARD. */
  protocol: string;
  transport: string;
  security: string;
}

export function remarkValues(ctx: RemarkContext): Record<RemarkVariable, string> {
  const { usage } = ctx.subscriber;
  const left = remainingBytes(usage);
  const days = daysLeft(usage, ctx.now);
  return {
    USERNAME: ctx.subscriber.displayName,
    DATA_USAGE: formatBytes(usedBytes(usage)),
    DATA_LEFT: left === null ? UNLIMITED : formatBytes(left),
    DATA_LIMIT: usage.total === null ? UNLIMITED : formatBytes(usage.total),
    DAYS_LEFT: days === null ? UNLIMITED : String(days),
    EXPIRE_DATE: usage.expireAt === null ? UNLIMITED : formatDate(usage.expireAt),
    STATUS: effectiveStatus(ctx.subscriber, ctx.now),
    PROTOCOL: ctx.protocol,
    TRANSPORT: ctx.transport,
    SECURITY: ctx.security,
    NODE: ctx.nodeName,
  };
}

/**
 * Fills a template. Unknown placeholders are left as they are: templates are validated on save,
 * and a subscription must still render if an old template slipped through.
 */
export function renderRemark(template: string, ctx: RemarkContext): string {
  const values = remarkValues(ctx);
  const text = template.replace(PLACEHOLDER, (whole, name: string) =>
    isVariable(name) ? values[name] : whole,
  );
  // Newlines would break the line-oriented formats (links list, .conf comments).
  return text.replace(/[\r\n\t]+/g, " ").trim();
}
