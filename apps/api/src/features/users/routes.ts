import { type ControlPlane, CREDENTIAL_KINDS, type CredentialKind, type Engine } from "@vpnpanel/control";
import type { SubscriptionState } from "@vpnpanel/domain";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import {
  errorResponses,
  Id,
  IdParams,
  Page,
  PageQuery,
  TenantQuery,
  Timestamp,
  tenantHint,
} from "../../schemas";
import { Bytes, Engines, filterProps, Note, OrNull, optionalBody, Seconds, User, UserName } from "./schemas";

// Subscribers: CRUD, search, engine override and credential rotation. The subscription operations
// and bulk operations live in subscription-routes.ts and bulk-routes.ts.

export const termsProps = {
  plan_id: Type.Optional(Id("pln")),
  quota_bytes: Type.Optional(OrNull(Bytes)),
  duration_seconds: Type.Optional(OrNull(Seconds)),
  expires_at: Type.Optional(OrNull(Timestamp)),
};

export type TermsBody = {
  plan_id?: string;
  quota_bytes?: number | null;
  duration_seconds?: number | null;
  expires_at?: string | null;
};

export function termsOf(b: TermsBody) {
  return {
    ...(b.plan_id ? { planId: b.plan_id } : {}),
    ...(b.quota_bytes !== undefined
      ? { quotaBytes: b.quota_bytes === null ? null : BigInt(b.quota_bytes) }
      : {}),
    ...(b.duration_seconds !== undefined ? { durationSeconds: b.duration_seconds } : {}),
    ...(b.expires_at ? { expiresAt: new Date(b.expires_at) } : {}),
  };
}

export const userId = (req: { params: unknown }) => (req.params as { id: string }).id;

export function userRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/users",
    {
      config: tenantRoute("users:read"),
      schema: {
        tags: ["users"],
        summary:
          "Search subscribers (name prefix, note words, status, plan); newest first, or by name for a name search; keyset-paginated (cursor)",
        querystring: Type.Object({ ...PageQuery, ...TenantQuery, ...filterProps }),
        response: { 200: Page(User), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as {
        limit?: number;
        cursor?: string;
        username?: string;
        note?: string;
        status?: SubscriptionState;
        plan_id?: string;
      };
      const r = await cp.users.list(
        requireActor(req),
        tenantHint(req),
        {
          ...(q.username ? { username: q.username } : {}),
          ...(q.note ? { note: q.note } : {}),
          ...(q.status ? { status: q.status } : {}),
          ...(q.plan_id ? { planId: q.plan_id } : {}),
        },
        { limit: q.limit ?? 50, ...(q.cursor ? { cursor: q.cursor } : {}) },
      );
      return { items: r.items, next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/users",
    {
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary: "Create a subscriber with its subscription (from a plan, or explicit terms) and credentials",
        querystring: Type.Object(TenantQuery),
        body: Type.Object(
          {
            username: UserName,
            note: Type.Optional(OrNull(Note)),
            engines: Type.Optional(OrNull(Engines)),
            ...termsProps,
          },
          { additionalProperties: false },
        ),
        response: { 201: User, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as TermsBody & { username: string; note?: string | null; engines?: Engine[] | null };
      const user = await cp.users.create(requireActor(req), tenantHint(req), {
        username: b.username,
        note: b.note ?? null,
        engines: b.engines ?? null,
        ...termsOf(b),
      });
      return reply.status(201).send(user);
    },
  );

  app.get(
    "/users/:id",
    {
      config: tenantRoute("users:read"),
      schema: {
        tags: ["users"],
        summary: "A subscriber with its subscription, usage, subscription URL and public credentials",
        params: IdParams("usr"),
        response: { 200: User, ...errorResponses },
      },
    },
    async (req) => cp.users.get(requireActor(req), userId(req)),
  );

  app.patch(
    "/users/:id",
    {
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary: "Rename a subscriber or change the note",
        params: IdParams("usr"),
        body: Type.Object(
          { username: Type.Optional(UserName), note: Type.Optional(OrNull(Note)) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: User, ...errorResponses },
      },
    },
    async (req) =>
      cp.users.update(
        requireActor(req),
        userId(req),
        req.body as { username?: string; note?: string | null },
      ),
  );

  app.delete(
    "/users/:id",
    {
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary: "Delete a subscriber; nodes drop it and its address returns to the pool",
        params: IdParams("usr"),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      await cp.users.remove(requireActor(req), userId(req));
      return reply.status(204).send();
    },
  );

  app.post(
    "/users/:id/engines",
    {
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary: "Set the engines this subscriber may use (a subset of the plan's; null: the plan's)",
        params: IdParams("usr"),
        body: Type.Object({ engines: OrNull(Engines) }, { additionalProperties: false }),
        response: { 200: User, ...errorResponses },
      },
    },
    async (req) =>
      cp.users.setEngines(requireActor(req), userId(req), (req.body as { engines: Engine[] | null }).engines),
  );

  app.post(
    "/users/:id/credentials/rotate",
    {
      ...optionalBody,
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary:
          "Replace the subscriber's engine secrets (default all: Xray UUID, Trojan, Shadowsocks, WireGuard keys)",
        params: IdParams("usr"),
        body: Type.Object(
          {
            kinds: Type.Optional(
              Type.Array(Type.Union(CREDENTIAL_KINDS.map((k) => Type.Literal(k))), {
                minItems: 1,
                maxItems: CREDENTIAL_KINDS.length,
                uniqueItems: true,
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: User, ...errorResponses },
      },
    },
    async (req) =>
      cp.users.rotateCredentials(
        requireActor(req),
        userId(req),
        (req.body as { kinds?: CredentialKind[] } | undefined)?.kinds ?? CREDENTIAL_KINDS,
      ),
  );
}
