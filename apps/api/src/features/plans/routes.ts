import type { ControlPlane, PlanFields } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import {
  errorResponses,
  Id,
  IdParams,
  Nullable,
  Page,
  PageQuery,
  TenantQuery,
  Timestamp,
  tenantHint,
} from "../../schemas";
import { Bytes, Engines, OrNull, Seconds } from "../users/schemas";

const ResetStrategy = Type.Union(["none", "day", "week", "month", "year"].map((s) => Type.Literal(s)));
const ResetAnchor = Type.Union([Type.Literal("start"), Type.Literal("calendar")]);
const HoldMode = Type.Union([Type.Literal("none"), Type.Literal("first_connection"), Type.Literal("date")]);

const Plan = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  name: Type.String(),
  quota_bytes: Nullable(Type.Integer()),
  duration_seconds: Nullable(Type.Integer()),
  engines: Type.Array(Type.String()),
  reset_strategy: Type.String(),
  reset_anchor: Type.String(),
  hold_mode: Type.String(),
  hold_start_at: Nullable(Type.String()),
  max_hold_seconds: Nullable(Type.Integer()),
  next_plan_id: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
});

const planProps = {
  name: Type.String({ minLength: 1, maxLength: 64 }),
  quota_bytes: OrNull(Bytes),
  duration_seconds: OrNull(Seconds),
  engines: Engines,
  reset_strategy: ResetStrategy,
  reset_anchor: ResetAnchor,
  hold_mode: HoldMode,
  hold_start_at: OrNull(Timestamp),
  max_hold_seconds: OrNull(Seconds),
  next_plan_id: OrNull(Id("pln")),
};

const optionalPlanProps = {
  quota_bytes: Type.Optional(planProps.quota_bytes),
  duration_seconds: Type.Optional(planProps.duration_seconds),
  engines: Type.Optional(planProps.engines),
  reset_strategy: Type.Optional(planProps.reset_strategy),
  reset_anchor: Type.Optional(planProps.reset_anchor),
  hold_mode: Type.Optional(planProps.hold_mode),
  hold_start_at: Type.Optional(planProps.hold_start_at),
  max_hold_seconds: Type.Optional(planProps.max_hold_seconds),
  next_plan_id: Type.Optional(planProps.next_plan_id),
};
const PlanCreate = Type.Object(
  { name: planProps.name, ...optionalPlanProps },
  { additionalProperties: false },
);
const PlanPatch = Type.Object(
  { name: Type.Optional(planProps.name), ...optionalPlanProps },
  { additionalProperties: false, minProperties: 1 },
);

type PlanBody = {
  name?: string;
  quota_bytes?: number | null;
  duration_seconds?: number | null;
  engines?: PlanFields["engines"];
  reset_strategy?: PlanFields["resetStrategy"];
  reset_anchor?: PlanFields["resetAnchor"];
  hold_mode?: PlanFields["holdMode"];
  hold_start_at?: string | null;
  max_hold_seconds?: number | null;
  next_plan_id?: string | null;
};

/** The fields the request sent, in the service's terms (absent keys stay absent). */
function fieldsOf(b: PlanBody): Partial<PlanFields> {
  const out: Partial<PlanFields> = {};
  if (b.name !== undefined) out.name = b.name;
  if (b.quota_bytes !== undefined) out.quotaBytes = b.quota_bytes === null ? null : BigInt(b.quota_bytes);
  if (b.duration_seconds !== undefined) out.durationSeconds = b.duration_seconds;
  if (b.engines !== undefined) out.engines = b.engines;
  if (b.reset_strategy !== undefined) out.resetStrategy = b.reset_strategy;
  if (b.reset_anchor !== undefined) out.resetAnchor = b.reset_anchor;
  if (b.hold_mode !== undefined) out.holdMode = b.hold_mode;
  if (b.hold_start_at !== undefined)
    out.holdStartAt = b.hold_start_at === null ? null : new Date(b.hold_start_at);
  if (b.max_hold_seconds !== undefined) out.maxHoldSeconds = b.max_hold_seconds;
  if (b.next_plan_id !== undefined) out.nextPlanId = b.next_plan_id;
  return out;
}

const id = (req: { params: unknown }) => (req.params as { id: string }).id;

export function planRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/plans",
    {
      config: tenantRoute("plans:read"),
      schema: {
        tags: ["plans"],
        summary: "Plans of the tenant",
        querystring: Type.Object({ ...PageQuery, ...TenantQuery }),
        response: { 200: Page(Plan), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string };
      const r = await cp.plans.list(requireActor(req), tenantHint(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: r.items, next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/plans",
    {
      config: tenantRoute("plans:write"),
      schema: {
        tags: ["plans"],
        summary: "Create a plan: quota, duration, engines, data-limit resets, on-hold start, next plan",
        querystring: Type.Object(TenantQuery),
        body: PlanCreate,
        response: { 201: Plan, ...errorResponses },
      },
    },
    async (req, reply) => {
      const fields = fieldsOf(req.body as PlanBody);
      const plan = await cp.plans.create(requireActor(req), tenantHint(req), {
        ...fields,
        name: fields.name!,
      });
      return reply.status(201).send(plan);
    },
  );

  app.get(
    "/plans/:id",
    {
      config: tenantRoute("plans:read"),
      schema: { tags: ["plans"], params: IdParams("pln"), response: { 200: Plan, ...errorResponses } },
    },
    async (req) => cp.plans.get(requireActor(req), id(req)),
  );

  app.patch(
    "/plans/:id",
    {
      config: tenantRoute("plans:write"),
      schema: {
        tags: ["plans"],
        summary: "Change a plan. Existing subscriptions keep the terms they were given",
        params: IdParams("pln"),
        body: PlanPatch,
        response: { 200: Plan, ...errorResponses },
      },
    },
    async (req) => cp.plans.update(requireActor(req), id(req), fieldsOf(req.body as PlanBody)),
  );

  app.delete(
    "/plans/:id",
    {
      config: tenantRoute("plans:write"),
      schema: { tags: ["plans"], params: IdParams("pln"), response: { 204: Type.Null(), ...errorResponses } },
    },
    async (req, reply) => {
      await cp.plans.remove(requireActor(req), id(req));
      return reply.status(204).send();
    },
  );
}
