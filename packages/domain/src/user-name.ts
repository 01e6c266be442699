import type { Validation } from "./errors";

// A subscriber's name travels far beyond the panel: into share-link remarks (URL fragments), Clash
// YAML proxy names, sing-box tags, the `profile-title` header, `<name>.conf` file names, CLI
// arguments and webhook payloads. Hence a deliberately small alphabet:
// - ASCII letters, digits and `_ - . @`: no escaping needed in any of those places; `@` and `.`
//   so an e-mail address or a reseller's "shop.alice" works as a name.
// - No spaces, slashes, quotes, `:` or `>` (Xray's stats names use ">>>" as separator), no
//   Unicode: a look-alike "аlice" (Cyrillic а) would impersonate "alice" in every list.
// - Must start with a letter or a digit: a leading "-" reads as a CLI flag, a leading "." makes a
//   hidden `.conf` file.
// - 1–64 characters: long enough for an e-mail address, short enough for a remark on a phone.
// Names are unique per tenant case-insensitively (index on `userNameKey(name)` / `lower(name)`), so
// "Alice" and "alice" cannot both exist, while the name keeps the case it was typed with.

export const USER_NAME_MAX_LENGTH = 64;
const ALLOWED = /^[A-Za-z0-9_.@-]*$/;
const FIRST = /^[A-Za-z0-9]/;

export function validateUserName(name: unknown, field = "username"): Validation<string> {
  const fail = (message: string): Validation<string> => ({ ok: false, issues: [{ field, message }] });
  if (typeof name !== "string") return fail("must be a string");
  if (name.length === 0) return fail("must not be empty");
  if (name.length > USER_NAME_MAX_LENGTH) return fail(`must be at most ${USER_NAME_MAX_LENGTH} characters`);
  if (!ALLOWED.test(name)) {
    const bad = [...name].find((c) => !ALLOWED.test(c)) ?? "";
    return fail(`must contain only letters a-z A-Z, digits 0-9 and _ - . @ (found ${JSON.stringify(bad)})`);
  }
  if (!FIRST.test(name)) return fail("must start with a letter or a digit");
  return { ok: true, value: name };
}

/** The key that makes names unique per tenant regardless of case. */
export function userNameKey(name: string): string {
  return name.toLowerCase();
}
