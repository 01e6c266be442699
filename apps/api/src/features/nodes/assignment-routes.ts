import type { ControlPlane, Strategy } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, Page, PageQuery, TenantQuery, tenantHint } from "../../schemas";
import { optionalBody } from "../users/schemas";
import { NodeIdParams, Tags } from "./schemas";

// Which nodes serve which subscriptions: the tenant's strategy for new subscriptions, manual
// assignments, and a rebalance that gives unassigned subscriptions (or, with 'all', new nodes) their
// nodes.

const Role = Type.Union([Type.Literal("primary"), Type.Literal("redundant")]);
const Assignment = Type.Object({
  subscription_id: Type.String(),
  node_id: Type.String(),
  role: Type.String(),
  source: Type.String(),
  created_at: Type.String(),
});
const Policy = Type.Object({
  tenant_id: Type.String(),
  strategy: Type.String(),
  tags: Type.Array(Type.String()),
  redundancy: Type.Integer(),
});
const AssignmentParams = Type.Object({ id: NodeIdParams.properties.id, subscriptionId: Id("sub") });

export function nodeAssignmentRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.get(
    "/nodes/:id/assignments",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary: "Subscriptions assigned to the node",
        params: NodeIdParams,
        querystring: Type.Object(PageQuery),
        response: { 200: Page(Assignment), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { limit?: number; cursor?: string };
      const r = await cp.nodes.listAssignments(requireActor(req), (req.params as { id: string }).id, {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return {
        items: r.items.map((a) => ({
          subscription_id: a.subscriptionId,
          node_id: a.nodeId,
          role: a.role,
          source: a.source,
          created_at: a.createdAt.toISOString(),
        })),
        next_cursor: r.nextCursor,
      };
    },
  );

  app.put(
    "/nodes/:id/assignments/:subscriptionId",
    {
      config: tenantRoute("nodes:write"),
      ...optionalBody,
      schema: {
        tags: ["nodes"],
        summary: "Assign a subscription to the node (manual); its agent gets the user at once",
        params: AssignmentParams,
        body: Type.Object({ role: Type.Optional(Role) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ node_id: Type.String(), subscription_id: Type.String(), role: Type.String() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const p = req.params as { id: string; subscriptionId: string };
      const role = (req.body as { role?: "primary" | "redundant" } | undefined)?.role ?? "primary";
      const r = await cp.nodes.assign(requireActor(req), p.id, p.subscriptionId, role);
      return { node_id: r.nodeId, subscription_id: r.subscriptionId, role: r.role };
    },
  );

  app.delete(
    "/nodes/:id/assignments/:subscriptionId",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary: "Take a subscription off the node; its agent removes the user at once",
        params: AssignmentParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const p = req.params as { id: string; subscriptionId: string };
      await cp.nodes.unassign(requireActor(req), p.id, p.subscriptionId);
      return reply.status(204).send();
    },
  );

  app.get(
    "/node-assignment-policy",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary: "How new subscriptions get nodes (default: all)",
        querystring: Type.Object(TenantQuery),
        response: { 200: Policy, ...errorResponses },
      },
    },
    async (req) => {
      const p = await cp.nodes.getAssignmentPolicy(requireActor(req), tenantHint(req));
      return { tenant_id: p.tenantId, strategy: p.strategy, tags: p.tags, redundancy: p.redundancy };
    },
  );

  app.put(
    "/node-assignment-policy",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Set the strategy: all (every node), manual, round_robin, by_tag (least loaded node with one of the tags), by_capacity (most free capacity); redundancy = extra nodes per subscription",
        querystring: Type.Object(TenantQuery),
        body: Type.Object(
          {
            strategy: Type.Union(
              ["all", "manual", "round_robin", "by_tag", "by_capacity"].map((s) => Type.Literal(s)),
            ),
            tags: Type.Optional(Tags),
            redundancy: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Policy, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as { strategy: Strategy; tags?: string[]; redundancy?: number };
      const p = await cp.nodes.setAssignmentPolicy(requireActor(req), tenantHint(req), b);
      return { tenant_id: p.tenantId, strategy: p.strategy, tags: p.tags, redundancy: p.redundancy };
    },
  );

  app.post(
    "/node-assignments/rebalance",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Assign nodes to subscriptions that have none (and, with 'all', every node to every subscription); existing assignments are not moved",
        querystring: Type.Object(TenantQuery),
        response: {
          200: Type.Object({
            tenant_id: Type.String(),
            assigned: Type.Integer(),
            nodes_changed: Type.Integer(),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const r = await cp.nodes.rebalance(requireActor(req), tenantHint(req));
      return { tenant_id: r.tenantId, assigned: r.assigned, nodes_changed: r.nodesChanged };
    },
  );
}
