import { AppError } from "@vpnpanel/common";
import type { ControlPlane, FeedResponse } from "@vpnpanel/control";
import { pickFormat } from "@vpnpanel/render";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { publicRoute, tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, IdParams, Nullable } from "../../schemas";

// The subscription endpoint clients poll, and the admin views of the same documents. Request logs of
// /sub are kept at warn: the URL carries the token, which must not end up in access logs.

// Tokens are base64url; anything else is malformed input (400), never a lookup.
const Token = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$" });
const TokenParams = Type.Object({ token: Token });
const FormatQuery = Type.Object({ format: Type.Optional(Type.String({ maxLength: 32 })) });

// One body for every "no such subscription": unknown, revoked, deleted and malformed tokens alike.
const notFound = () => new AppError("not_found", "subscription not found");

const UserConfigs = Type.Object({
  user_id: Type.String(),
  subscription_id: Type.String(),
  subscription_url: Nullable(Type.String()),
  status: Type.String(),
  blocked_reason: Nullable(Type.String()),
  engines: Type.Array(Type.String()),
  xray: Nullable(
    Type.Object({
      links: Type.Array(
        Type.Object({
          node_id: Type.String(),
          name: Type.String(),
          protocol: Type.String(),
          link: Type.String(),
        }),
      ),
    }),
  ),
  wireguard: Nullable(
    Type.Object({
      configs: Type.Array(
        Type.Object({
          node_id: Type.String(),
          node_name: Type.String(),
          file_name: Type.String(),
          endpoint: Type.String(),
          conf: Type.String(),
        }),
      ),
    }),
  ),
  skipped: Type.Array(
    Type.Object({
      node_id: Type.String(),
      tag: Type.String(),
      errors: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
    }),
  ),
});

function send(reply: FastifyReply, result: FeedResponse) {
  switch (result.status) {
    case 404:
      throw notFound();
    case 429:
      throw new AppError("rate_limited", "too many requests for this subscription; retry later", {
        retryAfterSeconds: result.retryAfterSeconds,
      });
    case 304:
      return reply.status(304).headers(result.headers).send();
    case 200:
      return reply.status(200).headers(result.headers).send(result.body);
  }
}

function chooseFormat(req: FastifyRequest) {
  const q = req.query as { format?: string };
  const choice = pickFormat(req.headers["user-agent"], q.format);
  if (!choice.ok) throw new AppError("validation_failed", choice.error, { field: "format" });
  return { format: choice.format, explicitFormat: q.format !== undefined && q.format.trim() !== "" };
}

const ifNoneMatch = (req: FastifyRequest) => {
  const h = req.headers["if-none-match"];
  return typeof h === "string" ? h : undefined;
};

export function subRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/sub/:token",
    {
      config: publicRoute,
      logLevel: "warn",
      schema: {
        tags: ["subscription"],
        summary:
          "The subscriber's document: base64 links, Clash-Meta YAML, sing-box JSON, Xray JSON, WireGuard .conf, or an HTML page for browsers. Format from ?format= or the User-Agent; ETag / If-None-Match → 304; rate limited per token.",
        security: [],
        params: TokenParams,
        querystring: FormatQuery,
        response: errorResponses,
      },
    },
    async (req, reply) => {
      const { format, explicitFormat } = chooseFormat(req);
      const result = await cp.subscriptionFeed.serve({
        token: (req.params as { token: string }).token,
        format,
        explicitFormat,
        ifNoneMatch: ifNoneMatch(req),
      });
      return send(reply, result);
    },
  );

  app.get(
    "/sub/:token/wireguard/:nodeId",
    {
      config: publicRoute,
      logLevel: "warn",
      schema: {
        tags: ["subscription"],
        summary: "The subscriber's WireGuard .conf for one node",
        security: [],
        params: Type.Object({ token: Token, nodeId: Id("node") }),
        response: errorResponses,
      },
    },
    async (req, reply) => {
      const p = req.params as { token: string; nodeId: string };
      const result = await cp.subscriptionFeed.serve({
        token: p.token,
        format: "wireguard",
        explicitFormat: true,
        nodeId: p.nodeId,
        ifNoneMatch: ifNoneMatch(req),
      });
      return send(reply, result);
    },
  );

  app.get(
    "/users/:id/configs",
    {
      config: tenantRoute("users:read"),
      schema: {
        tags: ["subscription"],
        summary:
          "The user's client artifacts keyed by engine (share links per Xray inbound/host, a WireGuard .conf per node) and the subscription URL; engines the user is not allowed are null",
        params: IdParams("usr"),
        response: { 200: UserConfigs, ...errorResponses },
      },
    },
    async (req) => cp.userConfigs.configs(requireActor(req), (req.params as { id: string }).id),
  );

  app.get(
    "/users/:id/wireguard/qr",
    {
      config: tenantRoute("users:read"),
      schema: {
        tags: ["subscription"],
        summary:
          "QR code (SVG) of the user's WireGuard .conf; 403 when WireGuard is not allowed for the user",
        params: IdParams("usr"),
        querystring: Type.Object({ node_id: Type.Optional(Id("node")) }),
        response: errorResponses,
      },
    },
    async (req, reply) => {
      const q = req.query as { node_id?: string };
      const svg = await cp.userConfigs.wireguardQr(
        requireActor(req),
        (req.params as { id: string }).id,
        q.node_id,
      );
      return reply
        .header("content-type", "image/svg+xml; charset=utf-8")
        .header("cache-control", "private, no-store")
        .send(svg);
    },
  );
}
