import { SUBSCRIPTION_EVENTS, SUBSCRIPTION_STATES, transition } from "@vpnpanel/domain";
import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { causeOf, dependsOnUsage, outcomeSql, type UpdateEvent } from "./transition-sql";

const dialect = new PgDialect();
const facts = {
  started: sql`s.started_at IS NOT NULL`,
  expiresAt: sql`s.expires_at`,
  quotaBytes: sql`s.quota_bytes`,
  usedBytes: sql`u.used_bytes`,
  now: sql`now()`,
};

describe("transition SQL", () => {
  it("names the same cause as the domain for every event and from-state", () => {
    for (const event of SUBSCRIPTION_EVENTS) {
      for (const from of SUBSCRIPTION_STATES) {
        const r = transition(from, event, { started: true, timeExpired: true, quotaExhausted: true });
        if (r.ok) expect(causeOf(event), `${event} from ${from}`).toBe(r.domainEvent);
      }
    }
  });

  it("locks usage only for events whose outcome reads it", () => {
    const reads = SUBSCRIPTION_EVENTS.filter((e): e is UpdateEvent => e !== "delete").filter(dependsOnUsage);
    expect(reads.sort()).toEqual(
      [
        "activate",
        "change_plan",
        "enable",
        "hold_timeout",
        "quota_exceeded",
        "raise_quota",
        "renew",
        "reset_usage",
      ].sort(),
    );
  });

  it("compiles a cell per allowed from-state, with unconditional outcomes as WHEN true", () => {
    const disable = dialect.sqlToQuery(outcomeSql("disable", facts)).sql;
    expect(disable).not.toContain("ELSE");
    expect(disable.match(/WHEN true THEN 'disabled'/g)).toHaveLength(4);
    expect(disable).not.toContain("s.state = 'disabled'");
    const expire = dialect.sqlToQuery(outcomeSql("expired", facts)).sql;
    expect(expire).toContain("s.expires_at IS NOT NULL AND s.expires_at <= now()");
    expect(expire).not.toContain("used_bytes");
  });
});
