import type { ControlPlane } from "@vpnpanel/control";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { requireActor } from "../../plugins/authn";
import { tenantRoute } from "../../plugins/route-auth";
import { errorResponses, Nullable } from "../../schemas";
import { optionalBody } from "../users/schemas";
import { NodeIdParams } from "./schemas";

// Node identity: one-time enrollment tokens, certificates, revocation, and the per-node API key
// for POST /traffic/node-events.

const nodeId = (req: { params: unknown }) => (req.params as { id: string }).id;

const Certificate = Type.Object({
  serial: Type.String(),
  fingerprint_sha256: Type.String(),
  not_before: Type.String(),
  not_after: Type.String(),
  issued_via: Type.String(),
  issued_at: Type.String(),
  revoked_at: Nullable(Type.String()),
  revoked_reason: Nullable(Type.String()),
});

export function nodeEnrollmentRoutes(app: FastifyInstance, cp: ControlPlane) {
  app.post(
    "/nodes/:id/enrollment-tokens",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "A one-time enrollment token (shown once; ENROLLMENT_TOKEN_TTL_SECONDS), with the CA certificate the agent must trust and the collector addresses",
        params: NodeIdParams,
        response: {
          201: Type.Object({
            node_id: Type.String(),
            token: Type.String(),
            expires_at: Type.String(),
            ca_pem: Type.String(),
            collector_address: Type.String(),
            enroll_address: Type.String(),
          }),
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const t = await cp.enrollment.createToken(requireActor(req), nodeId(req));
      return reply.status(201).send({
        node_id: t.nodeId,
        token: t.token,
        expires_at: t.expiresAt.toISOString(),
        ca_pem: t.caPem,
        collector_address: t.collectorAddress,
        enroll_address: t.enrollAddress,
      });
    },
  );

  app.get(
    "/nodes/:id/certificates",
    {
      config: tenantRoute("nodes:read"),
      schema: {
        tags: ["nodes"],
        summary: "Certificates issued to the node, newest first",
        params: NodeIdParams,
        response: { 200: Type.Object({ items: Type.Array(Certificate) }), ...errorResponses },
      },
    },
    async (req) => {
      const rows = await cp.enrollment.listCertificates(requireActor(req), nodeId(req));
      return {
        items: rows.map((c) => ({
          serial: c.serialHex,
          fingerprint_sha256: c.fingerprintSha256,
          not_before: c.notBefore.toISOString(),
          not_after: c.notAfter.toISOString(),
          issued_via: c.issuedVia,
          issued_at: c.issuedAt.toISOString(),
          revoked_at: c.revokedAt?.toISOString() ?? null,
          revoked_reason: c.revokedReason,
        })),
      };
    },
  );

  app.post(
    "/nodes/:id/revoke",
    {
      config: tenantRoute("nodes:write"),
      ...optionalBody,
      schema: {
        tags: ["nodes"],
        summary:
          "Revoke every certificate of the node: collectors refuse it on the next call and close its live session; the node needs a new enrollment token",
        params: NodeIdParams,
        body: Type.Object(
          { reason: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...errorResponses },
      },
    },
    async (req) => {
      const reason = (req.body as { reason?: string } | undefined)?.reason ?? "revoked by an admin";
      return cp.enrollment.revoke(requireActor(req), nodeId(req), reason);
    },
  );

  app.post(
    "/nodes/:id/api-key",
    {
      config: tenantRoute("nodes:write"),
      schema: {
        tags: ["nodes"],
        summary:
          "Issue (or replace) the node's API key for POST /traffic/node-events (shown once; `Authorization: NodeKey <key>`)",
        params: NodeIdParams,
        response: { 201: Type.Object({ node_id: Type.String(), api_key: Type.String() }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const r = await cp.nodes.rotateApiKey(requireActor(req), nodeId(req));
      return reply.status(201).send({ node_id: r.nodeId, api_key: r.apiKey });
    },
  );
}
