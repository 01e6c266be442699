import { randomBytes } from "node:crypto";
import { AppError, type Clock, conflict, newId, notFound, type SecretBox } from "@vpnpanel/common";
import { type Db, queryRows, schema } from "@vpnpanel/db";
import { and, asc, eq, gt, type SQL, sql } from "drizzle-orm";
import { writeAudit } from "../audit/audit";
import { assignAllToNode, DEFAULT_POLICY, rebalanceTenant } from "../desired-state/assignment";
import type { EngineName } from "../desired-state/desired-users";
import { bumpNodeConfig, reconcileMembers } from "../desired-state/reconcile";
import { STRATEGIES, type Strategy } from "../desired-state/strategies";
import { type Actor, requireTenantPermission, resolveTenant } from "../rbac/actor";
import { isUniqueViolation } from "../shared/db-errors";
import { decodeCursor, keysetPage } from "../shared/pagination";
import { toBigInt, toDate, toNumber } from "../shared/sql-values";
import { hashApiKey } from "../traffic/traffic-service";
import {
  type NodeInbound,
  prepareInbounds,
  validateWireguardSettings,
  type WireguardSettings,
} from "./inbounds";
import { loadNodeFor, type NodeRow } from "./node-access";
import type { NodeBus } from "./node-bus";

// Nodes of a tenant: CRUD, the opaque policy document, health, assignments and the tenant's
// assignment policy. Every write is audited in its transaction; the collectors hear about it after
// commit through the NodeBus.

export interface NodeInput {
  name: string;
  address: string;
  tags?: string[];
  capacity?: number | null;
  core?: "xray" | "v2ray";
  engines?: EngineName[];
  inbounds?: NodeInbound[];
  wireguard?: WireguardSettings | null;
}

export interface AssignmentPolicyInput {
  strategy: Strategy;
  tags?: string[];
  redundancy?: number;
}

const nodeLabel = (n: NodeRow) => ({ name: n.name, address: n.address, core: n.core, engines: n.engines });

export function createNodesService(deps: {
  db: Db;
  box: SecretBox;
  clock: Clock;
  bus: NodeBus;
  degradedAfterSeconds: number;
}) {
  const { db, box, clock, bus } = deps;
  const n = schema.nodes;

  const publish = (event: Parameters<NodeBus["publish"]>[0]) => bus.publish(event).catch(() => {});

  function uniqueName<T>(input: { name?: string }, work: () => Promise<T>): Promise<T> {
    return work().catch((e) => {
      if (isUniqueViolation(e))
        throw conflict(`a node named "${input.name}" already exists`, { field: "name" });
      throw e;
    });
  }

  return {
    async list(
      actor: Actor,
      tenantHint: string | undefined,
      page: { limit: number; cursor?: string; tag?: string },
    ) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "nodes:read");
      const where: SQL[] = [eq(n.tenantId, tenantId)];
      if (page.cursor) where.push(gt(n.id, decodeCursor(page.cursor, "nodes")));
      if (page.tag) where.push(sql`${page.tag} = ANY(${n.tags})`);
      const rows = await db
        .select()
        .from(n)
        .where(and(...where))
        .orderBy(asc(n.id))
        .limit(page.limit + 1);
      return keysetPage(rows, page.limit, "nodes", (r) => r.id);
    },

    get: (actor: Actor, id: string) => loadNodeFor(db, actor, id, "nodes:read"),

    async create(actor: Actor, tenantHint: string | undefined, input: NodeInput) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "nodes:write");
      const id = newId("node");
      const core = input.core ?? "xray";
      const engines = input.engines ?? ["xray", "wireguard"];
      const inbounds = prepareInbounds(box, id, core, input.inbounds ?? []);
      if (input.wireguard) validateWireguardSettings(input.wireguard);
      const now = clock.now();
      const row = await uniqueName(input, () =>
        db.transaction(async (tx) => {
          const [created] = await tx
            .insert(n)
            .values({
              id,
              tenantId,
              name: input.name,
              address: input.address,
              tags: input.tags ?? [],
              capacity: input.capacity ?? null,
              core,
              engines,
              inbounds: inbounds as unknown as Record<string, unknown>[],
              wireguard: (input.wireguard ?? null) as Record<string, unknown> | null,
              createdAt: now,
              updatedAt: now,
            })
            .returning();
          await tx.insert(schema.nodeRevisions).values({ nodeId: id });
          await tx.insert(schema.nodeHealth).values({ nodeId: id, updatedAt: now });
          const assigned = await assignAllToNode(tx, { id, tenantId, engines });
          if (assigned > 0) await reconcileMembers(tx, { nodeId: id });
          await writeAudit(tx, actor, {
            tenantId,
            action: "node.create",
            targetType: "node",
            targetId: id,
            summary: { ...nodeLabel(created!), inbounds: inbounds.map((i) => i.tag), assigned },
          });
          return created!;
        }),
      );
      return row;
    },

    async update(actor: Actor, id: string, patch: Partial<NodeInput>) {
      if (patch.wireguard) validateWireguardSettings(patch.wireguard);
      const { row, configChanged, enginesChanged } = await uniqueName(patch, () =>
        db.transaction(async (tx) => {
          const before = await loadNodeFor(tx, actor, id, "nodes:write", { forUpdate: true });
          const core = patch.core ?? before.core;
          const previous = before.inbounds as unknown as NodeInbound[];
          const inbounds =
            patch.inbounds !== undefined || patch.core !== undefined
              ? prepareInbounds(box, id, core, patch.inbounds ?? previous, previous)
              : previous;
          const engines = patch.engines ?? before.engines;
          const [after] = await tx
            .update(n)
            .set({
              ...(patch.name !== undefined ? { name: patch.name } : {}),
              ...(patch.address !== undefined ? { address: patch.address } : {}),
              ...(patch.tags !== undefined ? { tags: patch.tags } : {}),
              ...(patch.capacity !== undefined ? { capacity: patch.capacity } : {}),
              ...(patch.wireguard !== undefined
                ? { wireguard: patch.wireguard as Record<string, unknown> | null }
                : {}),
              core,
              engines,
              inbounds: inbounds as unknown as Record<string, unknown>[],
              updatedAt: clock.now(),
            })
            .where(eq(n.id, id))
            .returning();
          const enginesChanged = [...engines].sort().join() !== [...before.engines].sort().join();
          const configChanged =
            enginesChanged ||
            core !== before.core ||
            JSON.stringify(inbounds) !== JSON.stringify(previous) ||
            (patch.wireguard !== undefined &&
              JSON.stringify(patch.wireguard) !== JSON.stringify(before.wireguard));
          if (configChanged) await bumpNodeConfig(tx, id);
          if (enginesChanged) {
            await assignAllToNode(tx, { id, tenantId: before.tenantId, engines });
            await reconcileMembers(tx, { nodeId: id });
          }
          await writeAudit(tx, actor, {
            tenantId: before.tenantId,
            action: "node.update",
            targetType: "node",
            targetId: id,
            summary: {
              before: nodeLabel(before),
              after: nodeLabel(after!),
              fields: Object.keys(patch),
            },
          });
          return { row: after!, configChanged, enginesChanged };
        }),
      );
      if (configChanged || enginesChanged) await publish({ type: "changed", nodeIds: [id] });
      return row;
    },

    async remove(actor: Actor, id: string) {
      await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, id, "nodes:write", { forUpdate: true });
        await tx
          .update(schema.nodeCertificates)
          .set({ revokedAt: clock.now(), revokedReason: "node deleted" })
          .where(and(eq(schema.nodeCertificates.nodeId, id), sql`revoked_at IS NULL`));
        await tx.delete(n).where(eq(n.id, id));
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.delete",
          targetType: "node",
          targetId: id,
          summary: nodeLabel(node),
        });
      });
      await publish({ type: "revoked", nodeIds: [id] });
    },

    async getPolicy(actor: Actor, id: string) {
      return (await loadNodeFor(db, actor, id, "nodes:read")).policy;
    },

    async setPolicy(actor: Actor, id: string, document: Record<string, unknown>) {
      if (JSON.stringify(document).length > 65_536) {
        throw new AppError("payload_too_large", "the policy document may be at most 64 KiB of JSON");
      }
      await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, id, "nodes:write", { forUpdate: true });
        await tx.update(n).set({ policy: document, updatedAt: clock.now() }).where(eq(n.id, id));
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.policy.update",
          targetType: "node",
          targetId: id,
          summary: { keys: Object.keys(document).slice(0, 50) },
        });
      });
      await publish({ type: "policy", nodeIds: [id] });
      return document;
    },

    async health(actor: Actor, id: string) {
      const node = await loadNodeFor(db, actor, id, "nodes:read");
      const rows = await queryRows<Record<string, unknown>>(
        db,
        sql`SELECT h.*, h.applied_revision::text AS applied_revision, r.revision::text AS desired_revision,
                   h.memory_used_bytes::text AS memory_used_bytes, h.memory_total_bytes::text AS memory_total_bytes,
                   b.seq::text AS last_seq, b.sampled_at AS last_sampled_at, b.received_at AS last_received_at
            FROM node_health h
            LEFT JOIN node_revisions r ON r.node_id = h.node_id
            LEFT JOIN LATERAL (SELECT seq, sampled_at, received_at FROM usage_batches
                               WHERE node_id = h.node_id ORDER BY seq DESC LIMIT 1) b ON true
            WHERE h.node_id = ${id}`,
      );
      const h = rows[0] ?? {};
      const now = clock.now();
      const lastSeen = toDate(h.last_seen_at);
      const connected = h.connected === true;
      const engines =
        (typeof h.engine_status === "string" ? JSON.parse(h.engine_status) : h.engine_status) ?? [];
      const silent = lastSeen ? (now.getTime() - lastSeen.getTime()) / 1000 : null;
      const unhealthyEngine = (engines as Array<{ status?: string }>).some(
        (e) => e.status === "degraded" || e.status === "down",
      );
      const status = !lastSeen
        ? "never_connected"
        : !connected
          ? "offline"
          : (silent ?? 0) > deps.degradedAfterSeconds || unhealthyEngine || h.lease_state === "offline"
            ? "degraded"
            : "online";
      const lastSampled = toDate(h.last_sampled_at);
      const applied = toBigInt(h.applied_revision) ?? 0n;
      const desired = toBigInt(h.desired_revision) ?? 0n;
      const parse = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : (v ?? []));
      return {
        node_id: node.id,
        status,
        node_status: node.status,
        connected,
        collector_id: (h.collector_id as string | null) ?? null,
        session_started_at: toDate(h.session_started_at)?.toISOString() ?? null,
        last_seen_at: lastSeen?.toISOString() ?? null,
        silent_seconds: silent === null ? null : Math.round(silent),
        agent_version: (h.agent_version as string | null) ?? null,
        boot_id: (h.boot_id as string | null) ?? null,
        capabilities: parse(h.capabilities),
        engines,
        wireguard_interfaces: parse(h.wireguard_interfaces),
        desired_revision: desired.toString(),
        applied_revision: applied.toString(),
        revision_lag: (desired > applied ? desired - applied : 0n).toString(),
        usage: {
          last_seq: (h.last_seq as string | null) ?? null,
          last_sampled_at: lastSampled?.toISOString() ?? null,
          lag_seconds: lastSampled
            ? Math.max(0, Math.round((now.getTime() - lastSampled.getTime()) / 1000))
            : null,
          queue_depth: toNumber(h.usage_queue_depth),
          oldest_pending_at: toDate(h.oldest_pending_usage)?.toISOString() ?? null,
        },
        lease_state: (h.lease_state as string | null) ?? null,
        load_average_1m: toNumber(h.load_average_1m),
        memory_used_bytes: (h.memory_used_bytes as string | null) ?? null,
        memory_total_bytes: (h.memory_total_bytes as string | null) ?? null,
        apply_failures: parse(h.apply_failures),
        degraded_after_seconds: deps.degradedAfterSeconds,
      };
    },

    async listAssignments(actor: Actor, nodeId: string, page: { limit: number; cursor?: string }) {
      const node = await loadNodeFor(db, actor, nodeId, "nodes:read");
      const a = schema.nodeAssignments;
      const where: SQL[] = [eq(a.nodeId, node.id)];
      if (page.cursor) where.push(gt(a.subscriptionId, decodeCursor(page.cursor, "assignments")));
      const rows = await db
        .select()
        .from(a)
        .where(and(...where))
        .orderBy(asc(a.subscriptionId))
        .limit(page.limit + 1);
      return keysetPage(rows, page.limit, "assignments", (r) => r.subscriptionId);
    },

    async assign(actor: Actor, nodeId: string, subscriptionId: string, role: "primary" | "redundant") {
      const revisions = await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, nodeId, "nodes:write");
        const [sub] = await tx
          .select({ id: schema.subscriptions.id })
          .from(schema.subscriptions)
          .where(
            and(
              eq(schema.subscriptions.id, subscriptionId),
              eq(schema.subscriptions.tenantId, node.tenantId),
            ),
          )
          .limit(1);
        if (!sub) throw notFound("subscription");
        await tx
          .insert(schema.nodeAssignments)
          .values({ subscriptionId, nodeId, tenantId: node.tenantId, role, source: "manual" })
          .onConflictDoUpdate({
            target: [schema.nodeAssignments.subscriptionId, schema.nodeAssignments.nodeId],
            set: { role, source: "manual" },
          });
        const r = await reconcileMembers(tx, { subscriptionIds: [subscriptionId] });
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.assignment.create",
          targetType: "subscription",
          targetId: subscriptionId,
          summary: { node_id: nodeId, role },
        });
        return r.revisions;
      });
      await publish({ type: "changed", nodeIds: [...revisions.keys()] });
      return { nodeId, subscriptionId, role };
    },

    async unassign(actor: Actor, nodeId: string, subscriptionId: string) {
      const revisions = await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, nodeId, "nodes:write");
        const a = schema.nodeAssignments;
        const gone = await tx
          .delete(a)
          .where(and(eq(a.nodeId, nodeId), eq(a.subscriptionId, subscriptionId)))
          .returning();
        if (gone.length === 0) throw notFound("assignment");
        const r = await reconcileMembers(tx, { subscriptionIds: [subscriptionId] });
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.assignment.delete",
          targetType: "subscription",
          targetId: subscriptionId,
          summary: { node_id: nodeId },
        });
        return r.revisions;
      });
      await publish({ type: "changed", nodeIds: [...revisions.keys()] });
    },

    async getAssignmentPolicy(actor: Actor, tenantHint: string | undefined) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "nodes:read");
      const [row] = await db
        .select()
        .from(schema.nodeAssignmentPolicies)
        .where(eq(schema.nodeAssignmentPolicies.tenantId, tenantId))
        .limit(1);
      return {
        tenantId,
        ...(row ? { strategy: row.strategy, tags: row.tags, redundancy: row.redundancy } : DEFAULT_POLICY),
      };
    },

    async setAssignmentPolicy(actor: Actor, tenantHint: string | undefined, input: AssignmentPolicyInput) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "nodes:write");
      if (!STRATEGIES.includes(input.strategy)) {
        throw new AppError("validation_failed", `strategy must be one of ${STRATEGIES.join(", ")}`, {
          field: "strategy",
        });
      }
      if (input.strategy === "by_tag" && !(input.tags ?? []).length) {
        throw new AppError("validation_failed", "by_tag needs at least one tag", { field: "tags" });
      }
      const value = { strategy: input.strategy, tags: input.tags ?? [], redundancy: input.redundancy ?? 0 };
      await db.transaction(async (tx) => {
        await tx
          .insert(schema.nodeAssignmentPolicies)
          .values({ tenantId, ...value, updatedAt: clock.now() })
          .onConflictDoUpdate({
            target: schema.nodeAssignmentPolicies.tenantId,
            set: { ...value, updatedAt: clock.now() },
          });
        await writeAudit(tx, actor, { tenantId, action: "node.assignment_policy.update", summary: value });
      });
      return { tenantId, ...value };
    },

    async rebalance(actor: Actor, tenantHint: string | undefined) {
      const tenantId = resolveTenant(actor, tenantHint);
      requireTenantPermission(actor, tenantId, "nodes:write");
      const { assigned, revisions } = await db.transaction(async (tx) => {
        const r = await rebalanceTenant(tx, tenantId);
        const touched = await queryRows<{ id: string }>(
          tx,
          sql`SELECT id FROM nodes WHERE tenant_id = ${tenantId} ORDER BY id`,
        );
        const revisions = new Map<string, bigint>();
        for (const t of touched) {
          for (const [node, rev] of (await reconcileMembers(tx, { nodeId: t.id })).revisions)
            revisions.set(node, rev);
        }
        await writeAudit(tx, actor, {
          tenantId,
          action: "node.assignment.rebalance",
          summary: { assigned: r.assigned },
        });
        return { assigned: r.assigned, revisions };
      });
      await publish({ type: "changed", nodeIds: [...revisions.keys()] });
      return { tenantId, assigned, nodesChanged: revisions.size };
    },

    async rotateApiKey(actor: Actor, id: string) {
      const key = `vpnk_${randomBytes(24).toString("base64url")}`;
      await db.transaction(async (tx) => {
        const node = await loadNodeFor(tx, actor, id, "nodes:write", { forUpdate: true });
        await tx
          .update(n)
          .set({ apiKeyHash: hashApiKey(key), updatedAt: clock.now() })
          .where(eq(n.id, id));
        await writeAudit(tx, actor, {
          tenantId: node.tenantId,
          action: "node.api_key.rotate",
          targetType: "node",
          targetId: id,
        });
      });
      return { nodeId: id, apiKey: key };
    },
  };
}

export type NodesService = ReturnType<typeof createNodesService>;
