import type { InjectOptions } from "fastify";
import type { Account, TestApi } from "../../../../test/support/api";

/**
 * Builds the request for one route against an object (or collection) of `tenantId`, creating what it
 * needs. `who` is the caller (routes on the caller's own account use it).
 */
export type Fixture = (t: TestApi, tenantId: string, who: Account) => Promise<InjectOptions>;

/** "METHOD /url/:template" → fixture. Every registered route must have one (the matrix test checks). */
export type Fixtures = Record<string, Fixture>;
