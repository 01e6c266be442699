import { AppError } from "@vpnpanel/common";
import type { ControlPlane } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, IdParams, Timestamp } from "../../schemas";
import { userId } from "./routes";
import { Bytes, OrNull, optionalBody, Seconds, User } from "./schemas";

// Subscription operations: each is one state-machine event (renew, change_plan, raise_quota,
// reset_usage, disable, enable, activate) or the token reissue. A state that does not allow the
// event answers 409 naming the state.

const route = (summary: string, body?: ReturnType<typeof Type.Object>) => ({
  ...(body ? optionalBody : {}),
  config: tenantRoute("subscriptions:write"),
  schema: {
    tags: ["subscriptions"],
    summary,
    params: IdParams("usr"),
    ...(body ? { body } : {}),
    response: { 200: User, ...errorResponses },
  },
});

export function subscriptionRoutes(app: FastifyInstance, cp: ControlPlane) {
  const base = "/users/:id/subscription";

  app.post(
    `${base}/renew`,
    route(
      "Renew: extend the end (default by the plan's duration, from the later of now and the current end) or set it; starts a new usage period unless reset_usage is false",
      Type.Object(
        {
          expires_at: Type.Optional(Timestamp),
          extend_seconds: Type.Optional(Seconds),
          reset_usage: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    async (req) => {
      const b = (req.body ?? {}) as { expires_at?: string; extend_seconds?: number; reset_usage?: boolean };
      if (b.expires_at && b.extend_seconds !== undefined) {
        throw new AppError("validation_failed", "extend_seconds: send either expires_at or extend_seconds", {
          field: "extend_seconds",
        });
      }
      return cp.subscriptions.renew(requireActor(req), userId(req), {
        ...(b.expires_at ? { expiresAt: new Date(b.expires_at) } : {}),
        ...(b.extend_seconds !== undefined ? { extendSeconds: b.extend_seconds } : {}),
        ...(b.reset_usage !== undefined ? { resetUsage: b.reset_usage } : {}),
      });
    },
  );

  app.post(
    `${base}/plan`,
    route(
      "Change the plan: its terms are copied and a new period starts now (usage reset unless reset_usage is false)",
      Type.Object(
        { plan_id: Id("pln"), reset_usage: Type.Optional(Type.Boolean()) },
        { additionalProperties: false },
      ),
    ),
    async (req) => {
      const b = req.body as { plan_id: string; reset_usage?: boolean };
      return cp.subscriptions.changePlan(requireActor(req), userId(req), {
        planId: b.plan_id,
        ...(b.reset_usage !== undefined ? { resetUsage: b.reset_usage } : {}),
      });
    },
  );

  app.post(
    `${base}/quota`,
    route(
      "Set the quota (quota_bytes; null = unlimited) or add to it (add_bytes). Below the usage, the subscriber is limited",
      Type.Object(
        { quota_bytes: Type.Optional(OrNull(Bytes)), add_bytes: Type.Optional(Bytes) },
        { additionalProperties: false, minProperties: 1, maxProperties: 1 },
      ),
    ),
    async (req) => {
      const b = req.body as { quota_bytes?: number | null; add_bytes?: number };
      return cp.subscriptions.setQuota(requireActor(req), userId(req), {
        ...(b.add_bytes !== undefined ? { addBytes: BigInt(b.add_bytes) } : {}),
        ...(b.quota_bytes !== undefined
          ? { quotaBytes: b.quota_bytes === null ? null : BigInt(b.quota_bytes) }
          : {}),
      });
    },
  );

  app.post(`${base}/reset`, route("Reset the usage of the current period to zero"), async (req) =>
    cp.subscriptions.resetUsage(requireActor(req), userId(req)),
  );

  app.post(
    `${base}/disable`,
    route(
      "Disable: nodes drop the subscriber until it is enabled",
      Type.Object(
        { reason: Type.Optional(Type.String({ maxLength: 200 })) },
        { additionalProperties: false },
      ),
    ),
    async (req) =>
      cp.subscriptions.disable(
        requireActor(req),
        userId(req),
        (req.body as { reason?: string } | undefined)?.reason,
      ),
  );

  app.post(
    `${base}/enable`,
    route(
      "Enable a disabled subscription; it settles to what its facts say (active, limited, expired, on hold)",
    ),
    async (req) => cp.subscriptions.enable(requireActor(req), userId(req)),
  );

  app.post(
    `${base}/activate`,
    route("Start an on-hold subscription now instead of at its first connection or deadline"),
    async (req) => cp.subscriptions.activate(requireActor(req), userId(req)),
  );

  app.post(
    `${base}/token`,
    route("Revoke the subscription URL and issue a new one (the old URL stops working at once)"),
    async (req) => cp.subscriptions.reissueToken(requireActor(req), userId(req)),
  );
}
