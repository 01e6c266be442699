import { AppError } from "@vpnpanel/common";
import type { ControlPlane, GroupBy, HttpBatch, TrafficFilter } from "@vpnpanel/control";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { publicRoute, tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Id, Page, PageQuery, TenantQuery, Timestamp, tenantHint } from "../../schemas";
import { EngineName } from "../nodes/schemas";

// Traffic over HTTP. POST /traffic/events takes the same usage batch as the gRPC stream, through the
// same ingest transaction and the same (node_id, seq) dedupe, for tools that cannot speak gRPC: an
// admin with traffic:write names the node; POST /traffic/node-events is for a tool holding one
// node's API key (`Authorization: NodeKey <key>`) and can only report for that node.
// The GET routes read usage per subscription, node, engine or hour over a time range.

const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Sample = Type.Object(
  {
    user_id: Type.String({ minLength: 1, maxLength: 64 }),
    engine: EngineName,
    uplink_bytes: Bytes,
    downlink_bytes: Bytes,
  },
  { additionalProperties: false },
);
const batchProps = {
  seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  sampled_at: Timestamp,
  samples: Type.Array(Sample, { maxItems: 20_000 }),
};
const Outcome = Type.Object({
  node_id: Type.String(),
  seq: Type.Integer(),
  duplicate: Type.Boolean(),
  counted: Type.Integer(),
  skipped: Type.Integer(),
});

type BatchBody = {
  node_id?: string;
  seq: number;
  sampled_at: string;
  samples: Array<{
    user_id: string;
    engine: "xray" | "wireguard";
    uplink_bytes: number;
    downlink_bytes: number;
  }>;
};

function toBatch(b: BatchBody): Omit<HttpBatch, "nodeId"> {
  return {
    seq: BigInt(b.seq),
    sampledAt: new Date(b.sampled_at),
    samples: b.samples.map((s) => ({
      userId: s.user_id,
      engine: s.engine,
      uplinkBytes: BigInt(s.uplink_bytes),
      downlinkBytes: BigInt(s.downlink_bytes),
    })),
  };
}

const rangeProps = {
  ...TenantQuery,
  from: Timestamp,
  to: Timestamp,
  subscription_id: Type.Optional(Id("sub")),
  user_id: Type.Optional(Id("usr")),
  node_id: Type.Optional(Type.String({ pattern: "^node_[0-9a-z]{26}$" })),
  engine: Type.Optional(EngineName),
};
type RangeQuery = {
  from: string;
  to: string;
  subscription_id?: string;
  user_id?: string;
  node_id?: string;
  engine?: "xray" | "wireguard";
};

function filterOf(q: RangeQuery): TrafficFilter {
  return {
    from: new Date(q.from),
    to: new Date(q.to),
    ...(q.subscription_id ? { subscriptionId: q.subscription_id } : {}),
    ...(q.user_id ? { userId: q.user_id } : {}),
    ...(q.node_id ? { nodeId: q.node_id } : {}),
    ...(q.engine ? { engine: q.engine } : {}),
  };
}

const UsageRow = Type.Object({
  key: Type.String(),
  upload_bytes: Type.Integer(),
  download_bytes: Type.Integer(),
  total_bytes: Type.Integer(),
});

function nodeKey(req: FastifyRequest): string {
  const m = /^NodeKey\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (!m) throw new AppError("unauthenticated", "a node API key is required (Authorization: NodeKey <key>)");
  return m[1]!;
}

const num = (s: string) => Number(s);
const bytes = <T extends { upload_bytes: string; download_bytes: string; total_bytes: string }>(r: T) => ({
  ...r,
  upload_bytes: num(r.upload_bytes),
  download_bytes: num(r.download_bytes),
  total_bytes: num(r.total_bytes),
});

export function trafficRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.post(
    "/traffic/events",
    {
      config: tenantRoute("traffic:write"),
      schema: {
        tags: ["traffic"],
        summary:
          "Store one usage batch of a node (same semantics as the gRPC UsageBatch: counted once per (node_id, seq); a replay answers duplicate=true)",
        body: Type.Object(
          { node_id: Type.String({ pattern: "^node_[0-9a-z]{26}$" }), ...batchProps },
          {
            additionalProperties: false,
          },
        ),
        response: { 200: Outcome, ...errorResponses },
      },
    },
    async (req) => {
      const b = req.body as BatchBody & { node_id: string };
      const r = await cp.traffic.submit(requireActor(req), { nodeId: b.node_id, ...toBatch(b) });
      return {
        node_id: b.node_id,
        seq: Number(r.seq),
        duplicate: r.duplicate,
        counted: r.counted,
        skipped: r.skipped,
      };
    },
  );

  app.post(
    "/traffic/node-events",
    {
      config: publicRoute,
      schema: {
        tags: ["traffic"],
        summary: "Store one usage batch as the node whose API key is sent (`Authorization: NodeKey <key>`)",
        security: [],
        body: Type.Object(batchProps, { additionalProperties: false }),
        response: { 200: Outcome, ...errorResponses },
      },
    },
    async (req) => {
      const r = await cp.traffic.submitWithNodeKey(nodeKey(req), toBatch(req.body as BatchBody));
      return {
        node_id: r.nodeId,
        seq: Number(r.seq),
        duplicate: r.duplicate,
        counted: r.counted,
        skipped: r.skipped,
      };
    },
  );

  app.get(
    "/traffic/usage",
    {
      config: tenantRoute("traffic:read"),
      schema: {
        tags: ["traffic"],
        summary:
          "Usage in [from, to) grouped by subscription, node, engine or hour (largest first; hours in order); hour resolution before the last rollup, exact after",
        querystring: Type.Object({
          ...rangeProps,
          group_by: Type.Optional(
            Type.Union(["subscription", "node", "engine", "hour", "none"].map((g) => Type.Literal(g))),
          ),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: {
          200: Type.Object({
            tenant_id: Type.String(),
            group_by: Type.String(),
            items: Type.Array(UsageRow),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const q = req.query as RangeQuery & { group_by?: GroupBy; limit?: number };
      const groupBy = q.group_by ?? "subscription";
      const r = await cp.traffic.usage(
        requireActor(req),
        tenantHint(req),
        filterOf(q),
        groupBy,
        q.limit ?? 100,
      );
      return { tenant_id: r.tenantId, group_by: groupBy, items: r.items.map(bytes) };
    },
  );

  app.get(
    "/traffic/summary",
    {
      config: tenantRoute("traffic:read"),
      schema: {
        tags: ["traffic"],
        summary: "Totals in [from, to), by engine and by node, and how many subscriptions had traffic",
        querystring: Type.Object(rangeProps),
        response: { 200: Type.Record(Type.String(), Type.Unknown()), ...errorResponses },
      },
    },
    async (req) => {
      const s = await cp.traffic.summary(
        requireActor(req),
        tenantHint(req),
        filterOf(req.query as RangeQuery),
      );
      return {
        tenant_id: s.tenantId,
        from: s.from.toISOString(),
        to: s.to.toISOString(),
        upload_bytes: num(s.upload_bytes),
        download_bytes: num(s.download_bytes),
        total_bytes: num(s.total_bytes),
        subscriptions: s.subscriptions,
        by_engine: s.by_engine.map(bytes),
        by_node: s.by_node.map(bytes),
      };
    },
  );

  app.get(
    "/traffic/rollups",
    {
      config: tenantRoute("traffic:read"),
      schema: {
        tags: ["traffic"],
        summary: "Hourly rollup rows (per hour, node, subscription, engine), keyset-paginated",
        querystring: Type.Object({ ...rangeProps, ...PageQuery }),
        response: {
          200: Page(
            Type.Object({
              hour: Type.String(),
              node_id: Type.String(),
              subscription_id: Type.String(),
              engine: Type.String(),
              samples: Type.Integer(),
              upload_bytes: Type.Integer(),
              download_bytes: Type.Integer(),
              total_bytes: Type.Integer(),
            }),
          ),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const q = req.query as RangeQuery & { limit?: number; cursor?: string };
      const r = await cp.traffic.rollups(requireActor(req), tenantHint(req), filterOf(q), {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: r.items.map(bytes), next_cursor: r.nextCursor };
    },
  );
}
