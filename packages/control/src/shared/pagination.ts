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
