// Snapshot diffing shared by both drivers: compares the desired users (those that carry credentials
// for the engine) with what the driver has applied, by a per-engine fingerprint of the credentials.
// An unchanged snapshot yields an empty diff, which is what makes applySnapshot idempotent.

import type { AgentUser } from "./types";

export interface UserDiff {
  toAdd: AgentUser[];
  toUpdate: AgentUser[];
  toRemove: string[];
  unchanged: number;
}

/**
 * `fingerprint` returns null for a user without credentials for this engine (it is then treated as
 * absent, so a user whose engine set lost this engine is removed). Duplicate ids: the last one wins.
 * The applied side holds whatever the driver keeps per user (a fingerprint string, or the credentials
 * themselves with `same` comparing them field by field — no second copy of every user's secrets).
 */
export function diffUsers<P>(
  applied: ReadonlyMap<string, P>,
  desired: readonly AgentUser[],
  fingerprint: (user: AgentUser) => P | null,
  same: (a: P, b: P) => boolean = Object.is,
): UserDiff {
  const wanted = new Map<string, { user: AgentUser; print: P }>();
  for (const user of desired) {
    const print = fingerprint(user);
    if (print === null) wanted.delete(user.id);
    else wanted.set(user.id, { user, print });
  }
  const diff: UserDiff = { toAdd: [], toUpdate: [], toRemove: [], unchanged: 0 };
  for (const [id, { user, print }] of wanted) {
    const current = applied.get(id);
    if (current === undefined) diff.toAdd.push(user);
    else if (!same(current, print)) diff.toUpdate.push(user);
    else diff.unchanged++;
  }
  for (const id of applied.keys()) {
    if (!wanted.has(id)) diff.toRemove.push(id);
  }
  return diff;
}

/**
 * Ids become Xray emails and counter-name segments (`user>>>ID>>>traffic>>>uplink`), so `>>>` would
 * make counters unparseable; control characters and whitespace would corrupt configs and logs.
 */
export function validateUserId(id: string): string | null {
  if (id.length === 0 || id.length > 200) return "id must be 1-200 characters";
  if (id.includes(">>>")) return 'id must not contain ">>>"';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
  if (/[\s\u0000-\u001f\u007f/]/.test(id)) return "id must not contain whitespace, control characters or '/'";
  return null;
}
