import type { Clock, SecretBox } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { desc, eq } from "drizzle-orm";
import { rotateSigningKeys } from "../auth/signing-keys";

/**
 * Rotates the JWT signing key once the newest one is `everyHours` old. Idempotent: a second run (or
 * replica) finds a fresh key and does nothing. Without any key yet it waits for the first sign-in to
 * create one.
 */
export async function rotateSigningKeysIfDue(
  db: Db,
  box: SecretBox,
  clock: Clock,
  settings: { everyHours: number; accessTtlSeconds: number },
) {
  const k = schema.signingKeys;
  const [newest] = await db.select({ createdAt: k.createdAt }).from(k).orderBy(desc(k.createdAt)).limit(1);
  if (!newest || clock.now().getTime() - newest.createdAt.getTime() < settings.everyHours * 3_600_000) {
    return { rotated: 0 };
  }
  const r = await rotateSigningKeys(db, box, clock, settings.accessTtlSeconds);
  // The key row is stamped by the database; the schedule is kept on the injected clock.
  await db.update(k).set({ createdAt: clock.now() }).where(eq(k.kid, r.kid));
  return { rotated: 1, retired: r.retired, deleted: r.deleted };
}
