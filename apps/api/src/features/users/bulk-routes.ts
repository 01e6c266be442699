import type { ControlPlane, Engine, UserFilter } from "@vpnpanel/control";
import type { SubscriptionState } from "@vpnpanel/domain";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, Nullable, TenantQuery, tenantHint } from "../../schemas";
import { type TermsBody, termsOf, termsProps } from "./routes";
import { Engines, filterProps, Note, OrNull, Seconds, UserName } from "./schemas";

// Bulk operations. Creation is all-or-nothing, a handful of set-based statements for the whole batch.
// Extend / add-quota apply one event to every subscriber matching the filter in ONE statement, and
// are audited as one action with the count.

const Filter = Type.Object(
  {
    ...filterProps,
    user_ids: Type.Optional(Type.Array(Id("usr"), { minItems: 1, maxItems: 10_000, uniqueItems: true })),
  },
  {
    additionalProperties: false,
    description: "all given conditions must hold; {} matches every subscriber of the tenant",
  },
);

type FilterBody = {
  username?: string;
  note?: string;
  status?: SubscriptionState;
  plan_id?: string;
  user_ids?: string[];
};

const filterOf = (f: FilterBody): UserFilter => ({
  ...(f.username ? { username: f.username } : {}),
  ...(f.note ? { note: f.note } : {}),
  ...(f.status ? { status: f.status } : {}),
  ...(f.plan_id ? { planId: f.plan_id } : {}),
  ...(f.user_ids ? { userIds: f.user_ids } : {}),
});

const Updated = Type.Object({ updated: Type.Integer() });

export function bulkRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.post(
    "/users/bulk",
    {
      config: tenantRoute("users:write"),
      schema: {
        tags: ["users"],
        summary: `Create up to ${cp.config.BULK_MAX_USERS} subscribers on the same terms in one request (all or none)`,
        querystring: Type.Object(TenantQuery),
        body: Type.Object(
          {
            ...termsProps,
            users: Type.Array(
              Type.Object(
                {
                  username: UserName,
                  note: Type.Optional(OrNull(Note)),
                  engines: Type.Optional(OrNull(Engines)),
                },
                { additionalProperties: false },
              ),
              { minItems: 1, maxItems: cp.config.BULK_MAX_USERS },
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            created: Type.Integer(),
            items: Type.Array(
              Type.Object({
                id: Type.String(),
                username: Type.String(),
                subscription_id: Type.String(),
                state: Type.String(),
                plan_id: Nullable(Type.String()),
                subscription_url: Type.String(),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const b = req.body as TermsBody & {
        users: Array<{ username: string; note?: string | null; engines?: Engine[] | null }>;
      };
      const r = await cp.users.bulkCreate(requireActor(req), tenantHint(req), {
        ...termsOf(b),
        users: b.users,
      });
      return reply.status(201).send(r);
    },
  );

  app.post(
    "/users/bulk/extend",
    {
      config: tenantRoute("subscriptions:write"),
      schema: {
        tags: ["subscriptions"],
        summary:
          "Extend the end of every matching subscription by extend_seconds (held ones: their duration); expired ones come back",
        querystring: Type.Object(TenantQuery),
        body: Type.Object({ filter: Filter, extend_seconds: Seconds }, { additionalProperties: false }),
        response: { 200: Updated, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as { filter: FilterBody; extend_seconds: number };
      const r = await cp.subscriptions.bulkExtend(
        requireActor(req),
        tenantHint(req),
        filterOf(b.filter),
        b.extend_seconds,
      );
      return { updated: r.matched };
    },
  );

  app.post(
    "/users/bulk/add-quota",
    {
      config: tenantRoute("subscriptions:write"),
      schema: {
        tags: ["subscriptions"],
        summary:
          "Add add_bytes to the quota of every matching subscription that has one; limited ones come back",
        querystring: Type.Object(TenantQuery),
        body: Type.Object(
          { filter: Filter, add_bytes: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) },
          { additionalProperties: false },
        ),
        response: { 200: Updated, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as { filter: FilterBody; add_bytes: number };
      const r = await cp.subscriptions.bulkAddQuota(
        requireActor(req),
        tenantHint(req),
        filterOf(b.filter),
        BigInt(b.add_bytes),
      );
      return { updated: r.matched };
    },
  );
}
