import { createHash, randomBytes } from "node:crypto";
import { AppError, type Clock, conflict, notFound } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { issueNodeCert, PkiError, parseCsr } from "@vpnpanel/pki";
import { and, desc, eq, gt, isNull, lt, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { loadNodeFor } from "../nodes/node-access";
import type { NodeBus } from "../nodes/node-bus";
import type { Actor } from "../rbac/actor";
import type { CaStore } from "./ca-store";

// Enrollment, renewal and revocation of node certificates (ARCHITECTURE.md §5.1).
//
// - An admin asks for a one-time token; only its SHA-256 is stored. A new token replaces any unused one.
// - Enroll (server-authenticated TLS, no client certificate): the token is consumed by the same
//   guarded UPDATE that records the new certificate, so a token works exactly once even when two
//   agents race with it. The CSR contributes only its public key (see @vpnpanel/pki issueNodeCert).
// - Re-enrolling a node replaces its identity: older certificates are revoked, live sessions closed.
// - Renewal runs over mTLS; the old certificate stays valid until the agent's first session with the
//   new one, which retires every older certificate of the node.
// - Revocation marks every certificate of the node; collectors check the list on every call and close
//   a live session when told (NodeBus "revoked").

const TOKEN_PREFIX = "vpne_";

export interface EnrollmentSettings {
  certValidityDays: number;
  tokenTtlSeconds: number;
  /** host:port agents dial for NodeControl, and for Enrollment. */
  collectorAddress: string;
  enrollAddress: string;
}

export interface IssuedNodeCertificate {
  nodeId: string;
  certificatePem: string;
  caChainPem: string;
  notAfter: Date;
}

export const hashToken = (token: string) => createHash("sha256").update(token, "utf8").digest("hex");

function pkiToAppError(e: unknown): never {
  if (e instanceof PkiError) throw new AppError("bad_request", e.message, { field: "csr_pem" });
  throw e;
}

export function createEnrollmentService(deps: {
  db: Db;
  ca: CaStore;
  clock: Clock;
  bus: NodeBus;
  settings: EnrollmentSettings;
}) {
  const { db, ca, clock, bus, settings } = deps;
  const certs = schema.nodeCertificates;
  const tokens = schema.nodeEnrollmentTokens;

  async function record(
    tx: Parameters<Parameters<Db["transaction"]>[0]>[0],
    node: { id: string; tenantId: string },
    issued: Awaited<ReturnType<typeof issueNodeCert>>,
    via: "enroll" | "renew",
  ) {
    await tx.insert(certs).values({
      serialHex: issued.info.serialHex,
      nodeId: node.id,
      tenantId: node.tenantId,
      fingerprintSha256: issued.info.fingerprintSha256,
      notBefore: issued.info.notBefore,
      notAfter: issued.info.notAfter,
      issuedVia: via,
      // Database time (not the injected clock): the order of issue decides which certificates a
      // session with a newer one retires.
    });
  }

  return {
    settings,

    async createToken(actor: Actor, nodeId: string) {
      const node = await loadNodeFor(db, actor, nodeId, "nodes:write");
      const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
      const now = clock.now();
      const expiresAt = new Date(now.getTime() + settings.tokenTtlSeconds * 1000);
      await db.transaction(async (tx) => {
        await tx.delete(tokens).where(and(eq(tokens.nodeId, node.id), isNull(tokens.usedAt)));
        await tx.insert(tokens).values({
          tokenHash: hashToken(token),
          nodeId: node.id,
          createdBy: actor.id,
          createdAt: now,
          expiresAt,
        });
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.enrollment_token.create",
          targetType: "node",
          targetId: node.id,
          summary: { expires_at: expiresAt.toISOString() },
        });
      });
      return {
        nodeId: node.id,
        token,
        expiresAt,
        caPem: (await ca.get()).certPem,
        collectorAddress: settings.collectorAddress,
        enrollAddress: settings.enrollAddress,
      };
    },

    /** The Enroll RPC. Errors: unauthenticated (bad token), bad_request (bad CSR). */
    async enroll(input: {
      token: string;
      csrPem: string;
      agentVersion: string;
      hostname: string;
    }): Promise<IssuedNodeCertificate> {
      if (!input.token.startsWith(TOKEN_PREFIX) || input.token.length > 128) {
        throw new AppError("unauthenticated", "enrollment token is invalid, expired or already used");
      }
      const tokenHash = hashToken(input.token);
      const now = clock.now();
      await parseCsr(input.csrPem).catch(pkiToAppError);
      const [pending] = await db
        .select({ nodeId: tokens.nodeId, tenantId: schema.nodes.tenantId })
        .from(tokens)
        .innerJoin(schema.nodes, eq(schema.nodes.id, tokens.nodeId))
        .where(and(eq(tokens.tokenHash, tokenHash), isNull(tokens.usedAt), gt(tokens.expiresAt, now)))
        .limit(1);
      if (!pending)
        throw new AppError("unauthenticated", "enrollment token is invalid, expired or already used");
      const node = { id: pending.nodeId, tenantId: pending.tenantId };
      const cachain = await ca.get();
      const issued = await issueNodeCert(cachain, {
        csrPem: input.csrPem,
        nodeId: node.id,
        validityDays: settings.certValidityDays,
        now,
      }).catch(pkiToAppError);

      const replaced = await db.transaction(async (tx) => {
        const consumed = await tx
          .update(tokens)
          .set({ usedAt: now })
          .where(and(eq(tokens.tokenHash, tokenHash), isNull(tokens.usedAt), gt(tokens.expiresAt, now)))
          .returning({ nodeId: tokens.nodeId });
        if (consumed.length === 0) {
          throw new AppError("unauthenticated", "enrollment token is invalid, expired or already used");
        }
        const old = await tx
          .update(certs)
          .set({ revokedAt: now, revokedReason: "re-enrolled" })
          .where(and(eq(certs.nodeId, node.id), isNull(certs.revokedAt)))
          .returning({ serial: certs.serialHex });
        await record(tx, node, issued, "enroll");
        await tx
          .update(schema.nodes)
          .set({ status: "active", enrolledAt: now, updatedAt: now })
          .where(eq(schema.nodes.id, node.id));
        await writeAudit(
          tx,
          { kind: "system", id: `node:${node.id}`, isPlatformOwner: false, memberships: new Map() },
          {
            tenantId: node.tenantId,
            action: "node.enroll",
            targetType: "node",
            targetId: node.id,
            summary: {
              serial: issued.info.serialHex,
              not_after: issued.info.notAfter.toISOString(),
              agent_version: input.agentVersion.slice(0, 64),
              hostname: input.hostname.slice(0, 255),
              replaced_certificates: old.length,
            },
          },
        );
        return old.length;
      });
      if (replaced > 0) await bus.publish({ type: "revoked", nodeIds: [node.id] }).catch(() => {});
      return {
        nodeId: node.id,
        certificatePem: issued.certPem,
        caChainPem: cachain.certPem,
        notAfter: issued.info.notAfter,
      };
    },

    /** RenewCertificate, for a node already authenticated by its current certificate. */
    async renew(nodeId: string, csrPem: string): Promise<IssuedNodeCertificate> {
      const [node] = await db.select().from(schema.nodes).where(eq(schema.nodes.id, nodeId)).limit(1);
      if (!node || node.status === "revoked") throw notFound("node");
      const cachain = await ca.get();
      const now = clock.now();
      const issued = await issueNodeCert(cachain, {
        csrPem,
        nodeId,
        validityDays: settings.certValidityDays,
        now,
      }).catch(pkiToAppError);
      await db.transaction(async (tx) => {
        await record(tx, node, issued, "renew");
        await writeAudit(
          tx,
          { kind: "system", id: `node:${node.id}`, isPlatformOwner: false, memberships: new Map() },
          {
            tenantId: node.tenantId,
            action: "node.certificate.renew",
            targetType: "node",
            targetId: node.id,
            summary: { serial: issued.info.serialHex, not_after: issued.info.notAfter.toISOString() },
          },
        );
      });
      return {
        nodeId,
        certificatePem: issued.certPem,
        caChainPem: cachain.certPem,
        notAfter: issued.info.notAfter,
      };
    },

    /** A serial that was never issued counts as revoked (e.g. a database restored from an old backup). */
    async isRevoked(serialHex: string): Promise<boolean> {
      const [row] = await db
        .select({ revokedAt: certs.revokedAt })
        .from(certs)
        .where(eq(certs.serialHex, serialHex))
        .limit(1);
      return !row || row.revokedAt !== null;
    },

    /** Serials among `serials` that are revoked now (the collector's periodic check of live sessions). */
    async revokedAmong(serials: string[]): Promise<Set<string>> {
      if (serials.length === 0) return new Set();
      const rows = await db
        .select({ serial: certs.serialHex })
        .from(certs)
        .where(and(sql`${certs.serialHex} = ANY(${sql.param(serials)}::text[])`, isNull(certs.revokedAt)));
      const valid = new Set(rows.map((r) => r.serial));
      return new Set(serials.filter((s) => !valid.has(s)));
    },

    /** A session authenticated with `serialHex`: every older certificate of the node is retired. */
    async retireOlderCertificates(nodeId: string, serialHex: string): Promise<number> {
      const now = clock.now();
      const rows = await db
        .update(certs)
        .set({ revokedAt: now, revokedReason: "superseded" })
        .where(
          and(
            eq(certs.nodeId, nodeId),
            isNull(certs.revokedAt),
            lt(
              certs.issuedAt,
              sql`(SELECT issued_at FROM node_certificates WHERE serial_hex = ${serialHex})`,
            ),
          ),
        )
        .returning({ serial: certs.serialHex });
      return rows.length;
    },

    async revoke(actor: Actor, nodeId: string, reason: string) {
      const now = clock.now();
      const count = await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, nodeId, "nodes:write", { forUpdate: true });
        const revoked = await tx
          .update(certs)
          .set({ revokedAt: now, revokedReason: reason })
          .where(and(eq(certs.nodeId, node.id), isNull(certs.revokedAt)))
          .returning({ serial: certs.serialHex });
        if (revoked.length === 0 && node.status !== "active") {
          throw conflict("the node holds no certificate to revoke");
        }
        await tx.delete(tokens).where(and(eq(tokens.nodeId, node.id), isNull(tokens.usedAt)));
        await tx
          .update(schema.nodes)
          .set({ status: "revoked", updatedAt: now })
          .where(eq(schema.nodes.id, node.id));
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.revoke",
          targetType: "node",
          targetId: node.id,
          summary: { reason, serials: revoked.map((r) => r.serial) },
        });
        return revoked.length;
      });
      await bus.publish({ type: "revoked", nodeIds: [nodeId] }).catch(() => {});
      return { revoked: count };
    },

    async listCertificates(actor: Actor, nodeId: string) {
      const node = await loadNodeFor(db, actor, nodeId, "nodes:read");
      return db
        .select()
        .from(certs)
        .where(eq(certs.nodeId, node.id))
        .orderBy(desc(certs.issuedAt))
        .limit(100);
    },
  };
}

export type EnrollmentService = ReturnType<typeof createEnrollmentService>;
