import { AppError } from "@vpnpanel/common";

// Keyset pagination cursors: opaque base64url of "<kind>:<last key>". The kind stops a cursor from
// one listing being replayed against another.

export function encodeCursor(kind: string, key: string): string {
  return Buffer.from(`${kind}:${key}`, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string, kind: string): string {
  const raw = Buffer.from(cursor, "base64url").toString("utf8");
  const prefix = `${kind}:`;
  if (!raw.startsWith(prefix) || raw.length === prefix.length) {
    throw new AppError("validation_failed", "cursor is invalid for this listing", { field: "cursor" });
  }
  return raw.slice(prefix.length);
}

/**
 * One page from the `limit + 1` rows a listing read in key order: the first `limit` rows, and the
 * cursor after the last of them when the extra row shows there is more.
 */
export function keysetPage<R>(
  rows: readonly R[],
  limit: number,
  kind: string,
  keyOf: (row: R) => string,
): { items: R[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(kind, keyOf(last)) : null,
  };
}
