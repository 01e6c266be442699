import type { ControlPlane, NodeInput } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Page, PageQuery, TenantQuery, tenantHint } from "../../schemas";
import { Node, NodeIdParams, nodeProps, nodeView } from "./schemas";

// Nodes: CRUD, the opaque policy document and health. Enrollment and assignments are in the
// sibling files.

type Body = {
  name: string;
  address: string;
  tags?: string[];
  capacity?: number | null;
  core?: "xray" | "v2ray";
  engines?: Array<"xray" | "wireguard">;
  inbounds?: NodeInput["inbounds"];
  wireguard?: NodeInput["wireguard"];
};

const nodeId = (req: { params: unknown }) => (req.params as { id: string }).id;
const PolicyDoc = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 100 });

export function nodeRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/nodes",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary: "The tenant's nodes, keyset-paginated",
        querystring: Type.Object({
          ...PageQuery,
          ...TenantQuery,
          tag: Type.Optional(Type.String({ maxLength: 64 })),
        }),
        response: { 200: Page(Node), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string; tag?: string };
      const r = await cp.nodes.list(requireActor(req), tenantHint(req), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.tag ? { tag: q.tag } : {}),
      });
      return { items: r.items.map(nodeView), next_cursor: r.nextCursor };
    },
  );

  app.post(
    "/nodes",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Create a node. Inbounds are validated for the node's core (a v2ray 4.x node refuses REALITY, XTLS flow, gRPC and uTLS). With the 'all' assignment strategy the node gets every subscriber of the tenant",
        querystring: Type.Object(TenantQuery),
        body: Type.Object(nodeProps, { additionalProperties: false }),
        response: { 201: Node, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as Body;
      const node = await cp.nodes.create(requireActor(req), tenantHint(req), b);
      return reply.status(201).send(nodeView(node));
    },
  );

  app.get(
    "/nodes/:id",
    {
      config: tenantRoute("nodes:read"),
      schema: { tags: ["nodes"], params: NodeIdParams, response: { 200: Node, ...errorResponses } },
    },
    async (req) => nodeView(await cp.nodes.get(requireActor(req), nodeId(req))),
  );

  app.patch(
    "/nodes/:id",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Change a node; a change of inbounds, WireGuard settings, core or engines reaches the agent as a config revision",
        params: NodeIdParams,
        body: Type.Partial(Type.Object(nodeProps), { additionalProperties: false, minProperties: 1 }),
        response: { 200: Node, ...errorResponses },
      },
    },
    async (req) => nodeView(await cp.nodes.update(requireActor(req), nodeId(req), req.body as Partial<Body>)),
  );

  app.delete(
    "/nodes/:id",
    {
      config: tenantRoute("nodes:write"),
      schema: { tags: ["nodes"], params: NodeIdParams, response: { 204: Type.Null(), ...errorResponses } },
    },
    async (req, reply) => {
      await cp.nodes.remove(requireActor(req), nodeId(req));
      return reply.status(204).send();
    },
  );

  app.get(
    "/nodes/:id/policy",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary: "The node's policy document",
        params: NodeIdParams,
        response: { 200: PolicyDoc, ...errorResponses },
      },
    },
    async (req) => cp.nodes.getPolicy(requireActor(req), nodeId(req)),
  );

  app.put(
    "/nodes/:id/policy",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Replace the node's policy document (opaque JSON). Known keys reach the agent's Policy: usage_interval_seconds, health_interval_seconds, max_samples_per_batch, enforce_leases_online",
        params: NodeIdParams,
        body: PolicyDoc,
        response: { 200: PolicyDoc, ...errorResponses },
      },
    },
    async (req) => cp.nodes.setPolicy(requireActor(req), nodeId(req), req.body as Record<string, unknown>),
  );

  app.get(
    "/nodes/:id/health",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary:
          "Last seen, agent version, per-engine status, desired vs applied revision, usage lag; 'degraded' when connected but silent longer than NODE_DEGRADED_AFTER_SECONDS or an engine fails",
        params: NodeIdParams,
        response: { 200: Type.Record(Type.String(), Type.Unknown()), ...errorResponses },
      },
    },
    async (req) => cp.nodes.health(requireActor(req), nodeId(req)),
  );
}
